/* Typed entries in C: each typed call below means a type other than its
 * entry's MTASK_ENTRIES line and prints the error; the last ones match.
 * `--entry square --arg 7` runs one entry with a JSON argument. */
#include <stdio.h>
#include <stdlib.h>

#include "mtask.h"

static int square(mtask_bytes arg, mtask_bytes *result) {
    long n = atol(mtask_cstr(arg));
    return mtask_return_fmt(result, "%ld", n * n);
}

static void report(const char *what, int status, mtask_bytes *value) {
    if (status == MTASK_OK)
        printf("%s: %s\n", what, mtask_cstr(*value));
    else
        printf("%s: %s\n", what, mtask_error());
    mtask_bytes_free(value);
}

static int main_entry(mtask_bytes arg, mtask_bytes *result) {
    (void)arg, (void)result;
    mtask_bytes value = {0, 0};
    report("text to square", mtask_call_typed("square", "text", mtask_str("x"), "int", &value),
           &value);
    report("square as text", mtask_call_typed("square", "int", mtask_str("5"), "text", &value),
           &value);
    report("no such entry", mtask_call_typed("cube", "int", mtask_str("5"), "int", &value), &value);
    report("square 7", mtask_call_typed("square", "int", mtask_str("7"), "int", &value), &value);
    report("untyped 8", mtask_call_typed("square", NULL, mtask_str("8"), NULL, &value), &value);
    return MTASK_OK;
}

MTASK_ENTRIES({"main", main_entry}, {"square", square, "int", "int"})
