/* The C SDK's behaviour, one entry per scenario; tests/c.rs runs each with
 * `mtask-host run --entry NAME` and checks what it prints. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "mtask.h"

/* Prints the status and message of a call that did not succeed. */
static void show(const char *what, int status) {
    if (status == MTASK_OK)
        printf("%s: ok\n", what);
    else
        printf("%s: %s (%s)\n", what, mtask_error(), mtask_status_name(status));
}

/* The first line of the last error (trap messages go on with a backtrace). */
static void show_first_line(const char *what, int status) {
    const char *message = mtask_error();
    const char *end = strchr(message, '\n');
    int len = end ? (int)(end - message) : (int)strlen(message);
    printf("%s: %.*s (%s)\n", what, len, message, mtask_status_name(status));
}

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

/* Children ------------------------------------------------------------------ */

static int sleeper(mtask_bytes arg, mtask_bytes *result) {
    mtask_sleep(MTASK_MS(atoi(mtask_cstr(arg))));
    return mtask_return_fmt(result, "slept %s ms", mtask_cstr(arg));
}

static int echo(mtask_bytes arg, mtask_bytes *result) {
    return mtask_return(result, arg.data, arg.len);
}

static int panics(mtask_bytes arg, mtask_bytes *result) {
    (void)arg, (void)result;
    mtask_yield();
    mtask_panic("bad state %d", 7);
}

static int aborts(mtask_bytes arg, mtask_bytes *result) {
    (void)arg, (void)result;
    abort();
}

static int inner(mtask_bytes arg, mtask_bytes *result) {
    (void)arg, (void)result;
    return mtask_fail("deep");
}

static int outer(mtask_bytes arg, mtask_bytes *result) {
    int status = mtask_call("inner", arg, result);
    return status == MTASK_OK ? MTASK_OK : mtask_fail("%s", mtask_error());
}

/* Takes numbers from the queue `work` and adds them up, until it closes. */
static int summer(mtask_bytes arg, mtask_bytes *result) {
    (void)arg;
    mtask_queue work;
    if (mtask_queue_open("work", 2, &work) != MTASK_OK)
        return mtask_fail("%s", mtask_error());
    long sum = 0;
    mtask_bytes item;
    int status;
    while ((status = mtask_queue_get(&work, MTASK_FOREVER, &item)) == MTASK_OK) {
        sum += atol(mtask_cstr(item));
        mtask_bytes_free(&item);
    }
    show("summer's last get", status);
    mtask_queue_drop(&work);
    return mtask_return_fmt(result, "%ld", sum);
}

/* Scenarios ------------------------------------------------------------------ */

/* Values travel both ways as bytes, NULs and all. */
static int values(mtask_bytes arg, mtask_bytes *result) {
    (void)arg, (void)result;
    mtask_bytes value;
    show("sleeper", mtask_call("sleeper", mtask_str("5"), &value));
    printf("value: %s\n", mtask_cstr(value));
    mtask_bytes_free(&value);

    uint8_t raw[] = {1, 0, 2, 0, 3};
    mtask_bytes bytes = {raw, sizeof raw};
    show("echo", mtask_call("echo", bytes, &value));
    printf("echoed %zu bytes, same: %s\n", value.len,
           value.len == sizeof raw && memcmp(value.data, raw, sizeof raw) == 0 ? "yes" : "no");
    mtask_bytes_free(&value);

    show("nameless", mtask_call("no_such_entry", mtask_str(""), &value));
    return MTASK_OK;
}

/* A join that times out leaves the child running; cancel ends it. */
static int timeouts(mtask_bytes arg, mtask_bytes *result) {
    (void)arg, (void)result;
    mtask_task child;
    show("spawn", mtask_spawn("sleeper", mtask_str("10000"), &child));
    double start = now_ms();
    show("join for 20 ms", mtask_join(&child, MTASK_MS(20), NULL));
    double waited = now_ms() - start;
    printf("waited at least 20 ms: %s\n", waited >= 20 ? "yes" : "no");
    printf("still held: %s\n", mtask_task_id(&child) ? "yes" : "no");
    mtask_cancel(&child);
    show("join after cancel", mtask_join(&child, MTASK_FOREVER, NULL));
    show("join again", mtask_join(&child, MTASK_FOREVER, NULL));
    return MTASK_OK;
}

/* Traps come back as MTASK_TRAPPED with the panic message first. */
static int traps(mtask_bytes arg, mtask_bytes *result) {
    (void)arg, (void)result;
    show_first_line("panics", mtask_call("panics", mtask_str(""), NULL));
    show_first_line("aborts", mtask_call("aborts", mtask_str(""), NULL));
    printf("parent still runs\n");
    return MTASK_OK;
}

/* A failure deep down carries every level's cause up. */
static int chain(mtask_bytes arg, mtask_bytes *result) {
    int status = mtask_call("outer", arg, result);
    return status == MTASK_OK ? MTASK_OK : mtask_fail("%s", mtask_error());
}

/* A bounded named queue between this task and a child. */
static int queues(mtask_bytes arg, mtask_bytes *result) {
    (void)arg, (void)result;
    mtask_queue work;
    show("open", mtask_queue_open("work", 2, &work));
    mtask_task child;
    show("spawn", mtask_spawn("summer", mtask_str(""), &child));
    char text[16];
    for (int i = 1; i <= 10; i++) {
        snprintf(text, sizeof text, "%d", i);
        if (mtask_queue_put(&work, mtask_str(text), MTASK_FOREVER) != MTASK_OK)
            return mtask_fail("put: %s", mtask_error());
    }
    mtask_queue_close(&work);
    show("put after close", mtask_queue_put(&work, mtask_str("11"), MTASK_FOREVER));
    mtask_bytes sum;
    show("join", mtask_join(&child, MTASK_FOREVER, &sum));
    printf("sum: %s\n", mtask_cstr(sum));
    mtask_bytes_free(&sum);

    mtask_queue empty;
    show("new", mtask_queue_new(0, &empty));
    mtask_bytes item;
    show("get from empty for 10 ms", mtask_queue_get(&empty, MTASK_MS(10), &item));
    printf("len: %u\n", (unsigned)mtask_queue_len(&empty));
    mtask_queue_drop(&empty);
    mtask_queue_drop(&work);
    return MTASK_OK;
}

/* Takes the queue its parent handed over and reports what it finds. */
static int taker(mtask_bytes arg, mtask_bytes *result) {
    (void)arg;
    mtask_stream wrong;
    show("take a stream at 0", mtask_taken_stream(0, &wrong));
    mtask_queue queue;
    show("take the queue at 0", mtask_taken_queue(0, &queue));
    mtask_queue again;
    show("take it again", mtask_taken_queue(0, &again));
    mtask_bytes item;
    if (mtask_queue_get(&queue, MTASK_FOREVER, &item) != MTASK_OK)
        return mtask_fail("%s", mtask_error());
    mtask_return(result, item.data, item.len);
    mtask_bytes_free(&item);
    return MTASK_OK;
}

/* A queue moves to a child at spawn; the parent's copy is released. */
static int handover(mtask_bytes arg, mtask_bytes *result) {
    (void)arg, (void)result;
    mtask_queue queue;
    show("new", mtask_queue_new(1, &queue));
    show("put", mtask_queue_put(&queue, mtask_str("ping"), MTASK_FOREVER));
    mtask_handle moved = mtask_give_queue(&queue);
    printf("parent's handle after giving: %d\n", (int)queue.handle);
    mtask_task child;
    show("spawn with the queue", mtask_spawn_with("taker", mtask_str(""), &moved, 1, &child));
    mtask_handle twice = mtask_give_queue(&queue);
    mtask_task nobody;
    show("give it twice", mtask_spawn_with("taker", mtask_str(""), &twice, 1, &nobody));
    mtask_bytes got;
    show("join", mtask_join(&child, MTASK_FOREVER, &got));
    printf("child got: %s\n", mtask_cstr(got));
    mtask_bytes_free(&got);
    return MTASK_OK;
}

/* Sockets the host did not grant are refused with the address named. */
static int sockets(mtask_bytes arg, mtask_bytes *result) {
    (void)arg, (void)result;
    mtask_listener listener;
    show("listen", mtask_listen("127.0.0.1:0", 8, &listener));
    mtask_stream stream;
    show("connect", mtask_connect("127.0.0.1:9", MTASK_MS(100), &stream));
    int argc;
    char **argv = mtask_args(&argc);
    for (int i = 1; i < argc; i++)
        printf("arg %d: %s\n", i, argv[i]);
    return MTASK_OK;
}

/* libc's own blocking sleep, as a C program would call it. */
static int libc_napper(mtask_bytes arg, mtask_bytes *result) {
    (void)arg, (void)result;
    usleep(50 * 1000);
    return MTASK_OK;
}

/* Ten tasks in usleep(50 ms) at once: each suspends only itself. */
static int libc_sleep(mtask_bytes arg, mtask_bytes *result) {
    (void)arg, (void)result;
    double start = now_ms();
    mtask_task nappers[10];
    for (int i = 0; i < 10; i++)
        if (mtask_spawn("libc_napper", mtask_str(""), &nappers[i]) != MTASK_OK)
            return mtask_fail("%s", mtask_error());
    for (int i = 0; i < 10; i++)
        show("napper", mtask_join(&nappers[i], MTASK_FOREVER, NULL));
    double took = now_ms() - start;
    /* One after another would take 500 ms. */
    printf("all slept at once: %s\n", took >= 50 && took < 250 ? "yes" : "no");
    return MTASK_OK;
}

/* Sleeps 20 ms, then says it ran. */
static int late_printer(mtask_bytes arg, mtask_bytes *result) {
    (void)arg, (void)result;
    mtask_sleep(MTASK_MS(20));
    printf("detached child ran\n");
    return MTASK_OK;
}

/* Detaches two children: one that ends well later and says so, one that
 * fails, which the host reports since nobody joins it. */
static int detached(mtask_bytes arg, mtask_bytes *result) {
    (void)arg, (void)result;
    mtask_task child;
    if (mtask_spawn("late_printer", mtask_str(""), &child) != MTASK_OK)
        return mtask_fail("%s", mtask_error());
    printf("child %s\n", mtask_task_id(&child) ? "spawned" : "missing");
    mtask_detach(&child);
    /* A detached handle is released: it has no task any more. */
    printf("after detach: id %llu\n", (unsigned long long)mtask_task_id(&child));
    if (mtask_spawn("inner", mtask_str(""), &child) != MTASK_OK)
        return mtask_fail("%s", mtask_error());
    mtask_detach(&child);
    /* The children run on: the sleeper ends within this sleep. */
    mtask_sleep(MTASK_MS(100));
    printf("main done\n");
    return MTASK_OK;
}

/* Connects to arg 1, sends a line, shuts its sending side and reads the
 * peer's answer, which comes once the peer has seen the end. */
static int half_close(mtask_bytes arg, mtask_bytes *result) {
    (void)arg, (void)result;
    int argc;
    char **argv = mtask_args(&argc);
    if (argc < 2)
        return mtask_fail("usage: half_close ADDRESS");
    mtask_stream stream;
    if (mtask_connect(argv[1], MTASK_MS(5000), &stream) != MTASK_OK)
        return mtask_fail("%s", mtask_error());
    show("send", mtask_send_all(&stream, mtask_str("hello from C"), MTASK_FOREVER));
    show("shutdown", mtask_shutdown_send(&stream));
    show("send after shutdown", mtask_send_all(&stream, mtask_str("late"), MTASK_FOREVER));
    for (;;) {
        mtask_bytes got;
        int status = mtask_recv(&stream, 1024, MTASK_FOREVER, &got);
        if (status != MTASK_OK)
            return mtask_fail("%s", mtask_error());
        if (got.len == 0)
            break;
        printf("answer: %.*s\n", (int)got.len, (const char *)got.data);
        mtask_bytes_free(&got);
    }
    mtask_stream_close(&stream);
    return MTASK_OK;
}

/* Placed anywhere --------------------------------------------------------- */

/* A child that says where it ran (the HOST variable each host is given)
 * and whether it has a spawn key. */
static int where(mtask_bytes arg, mtask_bytes *result) {
    (void)arg;
    const char *host = getenv("HOST");
    char *key = mtask_spawn_key();
    int status = mtask_return_fmt(result, "%s %s", host ? host : "?", key ? "keyed" : "unkeyed");
    free(key);
    return status;
}

/* Children placed anywhere: on another host in a cluster, here outside one. */
static int anywhere(mtask_bytes arg, mtask_bytes *result) {
    (void)arg, (void)result;
    for (int i = 0; i < 2; i++) {
        mtask_task child;
        int status = mtask_spawn_anywhere("where", mtask_str(""), NULL, 0, &child);
        if (status != MTASK_OK)
            return mtask_fail("%s", mtask_error());
        mtask_bytes ran;
        status = mtask_join(&child, MTASK_FOREVER, &ran);
        if (status != MTASK_OK)
            return mtask_fail("%s", mtask_error());
        printf("child ran on %.*s\n", (int)ran.len, (const char *)ran.data);
        mtask_bytes_free(&ran);
    }
    char *key = mtask_spawn_key();
    printf("my key: %s\n", key ? key : "none");
    free(key);
    return MTASK_OK;
}

/* WIT 0.1.3: monitors, links and cancel_tree. -------------------------------- */

/* Links itself to the task whose id is `arg`, then sleeps 10 s. */
static int linked(mtask_bytes arg, mtask_bytes *result) {
    (void)result;
    int status = mtask_link(strtoull(mtask_cstr(arg), NULL, 10));
    if (status != MTASK_OK)
        return mtask_fail("%s", mtask_error());
    mtask_sleep(MTASK_MS(10000));
    return MTASK_OK;
}

/* Starts a sleeper of 10 s, says its id on the queue `tree-ids`, sleeps on. */
static int tree(mtask_bytes arg, mtask_bytes *result) {
    (void)arg, (void)result;
    mtask_task child;
    mtask_queue ids;
    if (mtask_spawn("sleeper", mtask_str("10000"), &child) != MTASK_OK ||
        mtask_queue_open("tree-ids", 1, &ids) != MTASK_OK)
        return mtask_fail("%s", mtask_error());
    char id[24];
    snprintf(id, sizeof id, "%llu", (unsigned long long)mtask_task_id(&child));
    mtask_queue_put(&ids, mtask_str(id), MTASK_FOREVER);
    mtask_sleep(MTASK_MS(10000));
    return MTASK_OK;
}

static int watch(mtask_bytes arg, mtask_bytes *result) {
    (void)arg, (void)result;
    mtask_task failing;
    mtask_spawn("inner", mtask_str(""), &failing);
    uint64_t id = mtask_task_id(&failing);
    mtask_monitor monitor;
    show("monitor", mtask_monitor_open(id, &monitor));
    show("wait", mtask_monitor_wait(&monitor, MTASK_FOREVER));
    show("wait again", mtask_monitor_wait(&monitor, MTASK_MS(1)));
    mtask_monitor_close(&monitor);
    show("closed", mtask_monitor_wait(&monitor, MTASK_FOREVER));
    show("join", mtask_join(&failing, MTASK_FOREVER, NULL));
    show("taken", mtask_monitor_open(id, &monitor));
    mtask_task again, linker;
    mtask_spawn("inner", mtask_str(""), &again);
    char text[24];
    snprintf(text, sizeof text, "%llu", (unsigned long long)mtask_task_id(&again));
    mtask_spawn("linked", mtask_str(text), &linker);
    show("linked", mtask_join(&linker, MTASK_FOREVER, NULL));
    mtask_join(&again, MTASK_FOREVER, NULL);
    show("link to itself", mtask_link(mtask_current_id()));
    mtask_task parent;
    mtask_queue ids;
    mtask_queue_open("tree-ids", 1, &ids);
    mtask_spawn("tree", mtask_str(""), &parent);
    mtask_bytes item;
    mtask_queue_get(&ids, MTASK_FOREVER, &item);
    mtask_monitor grandchild;
    mtask_monitor_open(strtoull(mtask_cstr(item), NULL, 10), &grandchild);
    mtask_bytes_free(&item);
    mtask_cancel_tree(&parent);
    show("cancel_tree", mtask_join(&parent, MTASK_FOREVER, NULL));
    show("its child", mtask_monitor_wait(&grandchild, MTASK_MS(50)));
    mtask_monitor_close(&grandchild);
    return MTASK_OK;
}

MTASK_ENTRIES({"watch", watch}, {"linked", linked}, {"tree", tree},
              {"detached", detached}, {"late_printer", late_printer}, {"half_close", half_close},
              {"anywhere", anywhere}, {"where", where},
              {"libc_sleep", libc_sleep}, {"libc_napper", libc_napper}, {"handover", handover}, {"taker", taker}, {"sockets", sockets},
              {"values", values}, {"timeouts", timeouts}, {"traps", traps}, {"chain", chain},
              {"queues", queues}, {"sleeper", sleeper}, {"echo", echo}, {"panics", panics},
              {"aborts", aborts}, {"inner", inner}, {"outer", outer}, {"summer", summer})
