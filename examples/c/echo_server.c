/* The seed's echo server, in C: a listener task and one client_handler
 * task per connection.
 *
 *     mtask-host run --listen 127.0.0.1:7878 echo_server.wasm -- ADDRESS [COUNT]
 */
#include <stdio.h>
#include <stdlib.h>

#include "mtask.h"

/* Sends back what it receives until the peer closes its side. */
static int client_handler(mtask_bytes arg, mtask_bytes *result) {
    (void)arg, (void)result;
    mtask_stream conn;
    if (mtask_taken_stream(0, &conn) != MTASK_OK)
        return mtask_fail("%s", mtask_error());
    mtask_bytes request;
    int status;
    while ((status = mtask_recv(&conn, 1024, MTASK_FOREVER, &request)) == MTASK_OK && request.len) {
        status = mtask_send_all(&conn, request, MTASK_FOREVER);
        mtask_bytes_free(&request);
        if (status != MTASK_OK)
            break;
    }
    mtask_stream_close(&conn);
    return status == MTASK_OK ? MTASK_OK : mtask_fail("%s", mtask_error());
}

/* Accepts COUNT connections (or forever), each served by a task of its own. */
static int start(mtask_bytes arg, mtask_bytes *result) {
    (void)arg, (void)result;
    int argc;
    char **argv = mtask_args(&argc);
    const char *address = argc > 1 ? argv[1] : "127.0.0.1:7878";
    long count = argc > 2 ? atol(argv[2]) : -1;

    mtask_listener listener;
    char *bound;
    if (mtask_listen(address, 128, &listener) != MTASK_OK ||
        mtask_listener_address(&listener, &bound) != MTASK_OK)
        return mtask_fail("%s", mtask_error());
    printf("listening on %s\n", bound);
    free(bound);

    mtask_task *handlers = NULL;
    long served = 0;
    for (; count < 0 || served < count; served++) {
        mtask_stream conn;
        if (mtask_accept(&listener, MTASK_FOREVER, &conn, NULL) != MTASK_OK)
            return mtask_fail("%s", mtask_error());
        mtask_handle moved = mtask_give_stream(&conn);
        handlers = realloc(handlers, (size_t)(served + 1) * sizeof *handlers);
        if (mtask_spawn_with("client_handler", mtask_str(""), &moved, 1, &handlers[served]) != MTASK_OK)
            return mtask_fail("%s", mtask_error());
    }
    for (long i = 0; i < served; i++)
        if (mtask_join(&handlers[i], MTASK_FOREVER, NULL) != MTASK_OK)
            fprintf(stderr, "%s\n", mtask_error());
    free(handlers);
    printf("served %ld connections\n", served);
    return MTASK_OK;
}

MTASK_ENTRIES({"main", start}, {"client_handler", client_handler})
