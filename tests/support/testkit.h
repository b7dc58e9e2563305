// Umbrella header of the in-tree test kit.
#pragma once
#include "support/fake_irq.h"
