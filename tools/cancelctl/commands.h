/* The subcommands of cancelctl; each lives in cmd_<name>.c and returns the
 * process exit status. */
#ifndef CANCELCTL_COMMANDS_H
#define CANCELCTL_COMMANDS_H

int cmd_run(int argc, char **argv);
int cmd_check(int argc, char **argv);
int cmd_demo(int argc, char **argv);
int cmd_stats(int argc, char **argv);
int cmd_watch(int argc, char **argv);
/* cmd_systemd.c */
int cmd_enable(int argc, char **argv);
int cmd_disable(int argc, char **argv);
int cmd_status(int argc, char **argv);

#endif
