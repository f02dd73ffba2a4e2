/* The seed's parent and children, in C: child tasks return values to
 * their parent, and their errors come back up to it. */
#include <stdio.h>

#include "mtask.h"

static int return_none(mtask_bytes arg, mtask_bytes *result) {
    (void)arg, (void)result;
    mtask_yield();
    return MTASK_OK;
}

static int return_one(mtask_bytes arg, mtask_bytes *result) {
    (void)arg;
    mtask_yield();
    return mtask_return_fmt(result, "%d", 1);
}

static int return_many(mtask_bytes arg, mtask_bytes *result) {
    (void)arg;
    mtask_yield();
    return mtask_return_fmt(result, "(%d, %d)", 2, 3);
}

static int raise_exception(mtask_bytes arg, mtask_bytes *result) {
    (void)arg, (void)result;
    mtask_yield();
    return mtask_fail("foo");
}

/* Runs `entry` as a child and prints what came back. */
static void show(const char *entry) {
    mtask_bytes value;
    int status = mtask_call(entry, mtask_str(""), &value);
    if (status == MTASK_OK)
        printf("%s\n", value.len ? mtask_cstr(value) : "(no value)");
    else
        printf("caught exception: %s\n", mtask_error_message());
    mtask_bytes_free(&value);
}

static int start(mtask_bytes arg, mtask_bytes *result) {
    (void)arg, (void)result;
    show("return_none");
    show("return_one");
    show("return_many");
    show("raise_exception");
    return MTASK_OK;
}

MTASK_ENTRIES({"main", start}, {"return_none", return_none}, {"return_one", return_one},
              {"return_many", return_many}, {"raise_exception", raise_exception})
