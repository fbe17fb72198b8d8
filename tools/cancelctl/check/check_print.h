/* Printing a check_report: text for people, JSON for machines. Every string
 * that came from the analysed file is escaped: the file is untrusted. */
#ifndef CANCELCTL_CHECK_PRINT_H
#define CANCELCTL_CHECK_PRINT_H

#include <stdio.h>

#include "check_analysis.h"

/* `asked` is the name the user gave (the report's path may be an interpreter). */
void check_print_text(FILE *out, const char *asked, const struct check_report *r);
void check_print_json(FILE *out, const char *asked, const struct check_report *r);
/* str for a terminal: control characters and invalid UTF-8 as \xNN. */
void check_put_text(FILE *out, const char *str);

#endif
