/* A harmless library to put in LD_PRELOAD before `cancelctl run`: the tests
 * check it stays there, in front of the shim. */
int cancelctl_test_nothing(void) { return 0; }
