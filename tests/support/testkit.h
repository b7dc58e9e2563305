// Umbrella header of the in-tree test kit.
#pragma once
#include "support/descriptor_chain_builder.h"
#include "support/fake_driver_queue.h"
#include "support/fake_irq.h"
