/* A component whose start-up (its C constructors, run when each task's
 * instance is made) takes 200 ms: tests/scheduling.rs checks that start-up
 * does not use up the time slice of a task's first steps. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mtask.h"

/* Spins (does not sleep: this is CPU work) for `ms` milliseconds. */
static void busy(int ms) {
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    do
        clock_gettime(CLOCK_MONOTONIC, &now);
    while ((now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000 < ms);
}

__attribute__((constructor)) static void slow_start(void) { busy(200); }

/* `WORD MS`: works MS milliseconds (several epoch ticks, but well inside
 * a slice), then prints WORD three times, yielding after each line. */
static int printer(mtask_bytes arg, mtask_bytes *result) {
    (void)result;
    const char *text = mtask_cstr(arg);
    const char *space = strchr(text, ' ');
    busy(space ? atoi(space + 1) : 0);
    for (int i = 0; i < 3; i++) {
        printf("%.*s\n", space ? (int)(space - text) : (int)strlen(text), text);
        mtask_yield();
    }
    return MTASK_OK;
}

static int start(mtask_bytes arg, mtask_bytes *result) {
    (void)arg, (void)result;
    mtask_task hello, goodbye;
    mtask_spawn("printer", mtask_str("hello 5"), &hello);
    mtask_spawn("printer", mtask_str("goodbye 0"), &goodbye);
    mtask_join(&hello, MTASK_FOREVER, NULL);
    mtask_join(&goodbye, MTASK_FOREVER, NULL);
    return MTASK_OK;
}

MTASK_ENTRIES({"main", start}, {"printer", printer})
