// See README.md: declarations only.
#pragma once
#include "../declarations.h"
