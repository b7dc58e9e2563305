#include "support/fake_irq.h"
