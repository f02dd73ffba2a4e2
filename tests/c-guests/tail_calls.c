/* cflags: -mtail-call
 * A component that uses WebAssembly tail calls (`return_call`), which
 * Winch cannot compile: tests/tiering.rs checks that its first run falls
 * back to Cranelift. */
#include <stdio.h>
#include <stdlib.h>

#include "mtask.h"

typedef long long step_fn(long long n, long long sum);
static step_fn countdown;

/* Called through a pointer the compiler cannot see through, so that the
 * tail call stays a call (`return_call_indirect`), not a loop. */
static step_fn *volatile next = countdown;

/* Counts down from `n` by tail calls: without them, a million frames
 * would overflow the stack. */
static long long countdown(long long n, long long sum) {
    if (n == 0)
        return sum;
    step_fn *step = next;
    __attribute__((musttail)) return step(n - 1, sum + n);
}

/* Prints the sum 1 + ... + 1,000,000, counted by as many tail calls. */
static int start(mtask_bytes arg, mtask_bytes *result) {
    (void)arg, (void)result;
    printf("sum %lld\n", countdown(1000000, 0));
    return MTASK_OK;
}

MTASK_ENTRIES({"main", start})
