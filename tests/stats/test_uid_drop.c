#include <criterion/criterion.h>
#include "stats_test.h"
