/* The seed's printers, in C: two tasks that yield to each other. */
#include <stdio.h>

#include "mtask.h"

/* Prints its argument three times, yielding after each line. */
static int printer(mtask_bytes arg, mtask_bytes *result) {
    (void)result;
    for (int i = 0; i < 3; i++) {
        printf("%s\n", mtask_cstr(arg));
        mtask_yield();
    }
    return MTASK_OK;
}

static int start(mtask_bytes arg, mtask_bytes *result) {
    (void)arg, (void)result;
    mtask_task hello, goodbye;
    if (mtask_spawn("printer", mtask_str("hello"), &hello) != MTASK_OK ||
        mtask_spawn("printer", mtask_str("goodbye"), &goodbye) != MTASK_OK)
        return mtask_fail("cannot spawn: %s", mtask_error());
    if (mtask_join(&hello, MTASK_FOREVER, NULL) != MTASK_OK ||
        mtask_join(&goodbye, MTASK_FOREVER, NULL) != MTASK_OK)
        return mtask_fail("%s", mtask_error());
    return MTASK_OK;
}

MTASK_ENTRIES({"main", start}, {"printer", printer})
