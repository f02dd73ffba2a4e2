/* A UDP echo server, in C: sends each datagram back to its sender.
 *
 *     mtask-host run --listen 127.0.0.1:7879 --connect '127.0.0.1:*' udp_echo.wasm -- ADDRESS [COUNT]
 */
#include <stdio.h>
#include <stdlib.h>

#include "mtask.h"

static int start(mtask_bytes arg, mtask_bytes *result) {
    (void)arg, (void)result;
    int argc;
    char **argv = mtask_args(&argc);
    const char *address = argc > 1 ? argv[1] : "127.0.0.1:7879";
    long count = argc > 2 ? atol(argv[2]) : -1;

    mtask_udp socket;
    char *bound;
    if (mtask_udp_bind(address, &socket) != MTASK_OK || mtask_udp_address(&socket, &bound) != MTASK_OK)
        return mtask_fail("%s", mtask_error());
    printf("listening on %s\n", bound);
    free(bound);

    long echoed = 0;
    for (; count < 0 || echoed < count; echoed++) {
        mtask_bytes data;
        char *sender;
        if (mtask_udp_recv_from(&socket, 65536, MTASK_FOREVER, &data, &sender) != MTASK_OK)
            return mtask_fail("%s", mtask_error());
        int status = mtask_udp_send_to(&socket, data, sender, MTASK_FOREVER);
        mtask_bytes_free(&data);
        free(sender);
        if (status != MTASK_OK)
            return mtask_fail("%s", mtask_error());
    }
    mtask_udp_close(&socket);
    printf("echoed %ld datagrams\n", echoed);
    return MTASK_OK;
}

MTASK_ENTRIES({"main", start})
