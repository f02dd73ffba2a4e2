/*
 * mtask for C: tasks that yield to the mtask host, in multitask's spirit.
 *
 * A task is plain blocking C. Every call here that waits (mtask_sleep,
 * mtask_join, mtask_queue_get, ...) suspends only the calling task; the host
 * runs the other tasks meanwhile. Calls that take a timeout return
 * MTASK_TIMEOUT when it passes, having had no effect.
 *
 * Each task is a fresh instance of the component, so globals belong to the
 * task that touches them: nothing is shared between tasks but what travels
 * through spawn arguments, results and queues, all of them bytes.
 *
 * Define the entries with MTASK_ENTRIES, in one file of the program:
 *
 *     #include <stdio.h>
 *     #include <stdlib.h>
 *     #include "mtask.h"
 *
 *     static int square(mtask_bytes arg, mtask_bytes *result) {
 *         int n = atoi(mtask_cstr(arg));
 *         mtask_sleep(MTASK_MS(1));
 *         return mtask_return_fmt(result, "%d", n * n);
 *     }
 *
 *     static int main_entry(mtask_bytes arg, mtask_bytes *result) {
 *         mtask_bytes value;
 *         if (mtask_call("square", mtask_str("7"), &value) != MTASK_OK)
 *             return mtask_fail("%s", mtask_error());
 *         printf("%s\n", mtask_cstr(value));
 *         mtask_bytes_free(&value);
 *         return MTASK_OK;
 *     }
 *
 *     MTASK_ENTRIES({"main", main_entry}, {"square", square, "int", "int"})
 *
 * and build it as the README's "Tasks in C" shows (clang for wasm32-wasi,
 * wit-bindgen's C bindings of mtask's WIT, and `wasm-tools component new`
 * with the WASI reactor adapter).
 */
#ifndef MTASK_H
#define MTASK_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Statuses ------------------------------------------------------------------ */

/* What a call returned. Anything but MTASK_OK comes with a message that
 * mtask_error() returns until the next failing call. */
enum mtask_status {
    MTASK_OK = 0,
    /* A host call did not succeed (the WIT `error` cases). */
    MTASK_TIMEOUT,   /* the deadline passed; the call had no effect */
    MTASK_CANCELLED, /* this task is being cancelled */
    MTASK_CLOSED,    /* the queue is closed */
    MTASK_DENIED,    /* the sandbox refused it */
    MTASK_LIMIT,     /* a resource limit of the app was reached */
    MTASK_INVALID,   /* bad arguments: an unknown entry, ... */
    MTASK_IO,        /* the host's operating system failed */
    /* A joined child ended without a value (the WIT `task-error` cases). */
    MTASK_FAILED,         /* its entry returned an error (mtask_fail) */
    MTASK_TRAPPED,        /* it trapped: abort(), mtask_panic, a bad access */
    MTASK_TASK_CANCELLED, /* it was cancelled before it ended */
    MTASK_TASK_LIMIT,     /* it went over a limit of the sandbox */
};

/* The message of the last call of this task that did not return MTASK_OK
 * (for a child's failure: "task `ENTRY` failed: WHY"); "" if none. */
const char *mtask_error(void);

/* The message alone: for a child's failure, the child's own message, without
 * "task `ENTRY` failed: " (what Rust's TaskError::message and Python's
 * TaskFailed.message give); else what mtask_error() says. */
const char *mtask_error_message(void);

/* The name of a status: "timeout", "failed", ... */
const char *mtask_status_name(int status);

/* Bytes ---------------------------------------------------------------------- */

/* Bytes: an entry's argument and result, a queue item. */
typedef struct mtask_bytes {
    uint8_t *data;
    size_t len;
} mtask_bytes;

/* A view of a C string (not copied, no NUL): for arguments. */
mtask_bytes mtask_str(const char *s);

/* The bytes as a C string. The SDK keeps a NUL after every buffer it hands
 * out, so this is `data` itself for those; "" for empty bytes. */
const char *mtask_cstr(mtask_bytes b);

/* Frees bytes that the SDK handed out (join results, queue items). */
void mtask_bytes_free(mtask_bytes *b);

/* Entries -------------------------------------------------------------------- */

/* An entry: a kind of task. It reads `arg` (valid during the call) and
 * returns MTASK_OK, with `*result` set by mtask_return or left empty, or
 * mtask_fail(...), which ends the task as failed with that message. */
typedef int (*mtask_entry_fn)(mtask_bytes arg, mtask_bytes *result);

/* `arg_type` and `result_type` name what the entry takes and returns, in
 * words of the program's choosing ("int as text", "json"): a typed spawn
 * (mtask_spawn_typed) that means other types is refused. NULL: not said,
 * nothing checked. */
struct mtask_entry {
    const char *name;
    mtask_entry_fn run;
    const char *arg_type;
    const char *result_type;
};

/* The component's entries, ended by {0, 0}; MTASK_ENTRIES defines it. */
extern const struct mtask_entry mtask_entries[];

/* The types may be left out ({"main", main_entry}) even under -Wextra. */
#define MTASK_ENTRIES(...)                                                                     \
    _Pragma("GCC diagnostic push")                                                             \
    _Pragma("GCC diagnostic ignored \"-Wmissing-field-initializers\"")                         \
    const struct mtask_entry mtask_entries[] = {__VA_ARGS__, {0, 0, 0, 0}};                    \
    _Pragma("GCC diagnostic pop")

/* Sets `*result` to a copy of `len` bytes at `data`; returns MTASK_OK. */
int mtask_return(mtask_bytes *result, const void *data, size_t len);

/* Sets `*result` to formatted text; returns MTASK_OK. */
int mtask_return_fmt(mtask_bytes *result, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Records why the entry fails; returns MTASK_FAILED for the entry to return.
 * Its joiner sees "task `ENTRY` failed: MESSAGE". */
int mtask_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Ends the task at once as trapped, with this message: for bugs. */
_Noreturn void mtask_panic(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Scheduling ----------------------------------------------------------------- */

/* Timeouts are nanoseconds; MTASK_FOREVER waits as long as it takes. */
#define MTASK_FOREVER ((int64_t)-1)
#define MTASK_MS(ms) ((int64_t)(ms) * 1000000)
#define MTASK_SECONDS(s) ((int64_t)(s) * 1000000000)

/* Lets every other runnable task run once, then continues. */
void mtask_yield(void);

/* Suspends this task for at least `nanos` nanoseconds. */
void mtask_sleep(int64_t nanos);

/* This task's id, unique within the host's run. */
uint64_t mtask_current_id(void);

/* Child tasks ---------------------------------------------------------------- */

/* A child task, held by the task that spawned it. */
typedef struct mtask_task {
    int32_t handle; /* the host's handle; 0 once released */
    char *entry;    /* the entry it runs, for messages */
} mtask_task;

/* Starts a task running the entry `entry` of this component with a copy of
 * `arg`. It first runs when this task yields or waits. */
int mtask_spawn(const char *entry, mtask_bytes arg, mtask_task *task);

/* Waits until the child ends. MTASK_OK: `*result` holds its value (free it
 * with mtask_bytes_free; `result` may be NULL to drop it). MTASK_FAILED,
 * MTASK_TRAPPED, MTASK_TASK_CANCELLED, MTASK_TASK_LIMIT: how it ended, with
 * mtask_error() saying why. MTASK_TIMEOUT: it has not ended by then; it runs
 * on and can be joined again. Every other outcome releases the handle. */
int mtask_join(mtask_task *task, int64_t timeout, mtask_bytes *result);

/* Spawns `entry` and joins it: multitask's `yield child()`. */
int mtask_call(const char *entry, mtask_bytes arg, mtask_bytes *result);

/* Like mtask_spawn, saying what the caller means `arg` to be and wants back:
 * MTASK_INVALID, with nothing spawned, if the entry's MTASK_ENTRIES line
 * declares other types ("entry `square` takes int, not text"), or if there
 * is no such entry. A NULL type, here or there, is not checked. */
int mtask_spawn_typed(const char *entry, const char *arg_type, mtask_bytes arg,
                      const char *result_type, mtask_task *task);

/* mtask_call with the types checked as mtask_spawn_typed does. */
int mtask_call_typed(const char *entry, const char *arg_type, mtask_bytes arg,
                     const char *result_type, mtask_bytes *result);

/* Ends the child if it has not ended: joining it then gives
 * MTASK_TASK_CANCELLED. */
void mtask_cancel(mtask_task *task);

/* Releases the handle without joining: the child runs on, and if it fails
 * the host reports it on stderr. */
void mtask_detach(mtask_task *task);

/* The child's task id. */
uint64_t mtask_task_id(const mtask_task *task);

/* Like mtask_cancel, and ends every task the child started that has not
 * ended, and every task those started, down the tree (WIT 0.1.3).
 * mtask_cancel leaves them running, detached. */
void mtask_cancel_tree(mtask_task *task);

/* Monitors and links (WIT 0.1.3) ------------------------------------------ */

/* A watch on another task's end, from mtask_monitor_open. */
typedef struct mtask_monitor {
    int32_t handle; /* the host's handle; 0 once closed */
    uint64_t id;    /* the watched task's id */
} mtask_monitor;

/* Watches the task `id` of this app: one that runs, or one that ended whose
 * result nobody has taken yet. MTASK_INVALID if the app has no such task
 * now, or it is this task. */
int mtask_monitor_open(uint64_t id, mtask_monitor *monitor);

/* Waits until the watched task has ended and says how: MTASK_OK if its
 * entry returned a value (which goes to whoever joins it), else
 * MTASK_FAILED, MTASK_TRAPPED, MTASK_TASK_CANCELLED or MTASK_TASK_LIMIT,
 * with mtask_error() saying why. MTASK_TIMEOUT: not ended by then (the
 * watch goes on). Can be asked again. */
int mtask_monitor_wait(mtask_monitor *monitor, int64_t timeout);

/* Stops the watch. */
void mtask_monitor_close(mtask_monitor *monitor);

/* Links this task to the task `id` of this app: if that one fails
 * (cancelled included), this one is cancelled. One way; linking to a task
 * that failed already cancels this one at its next wait. MTASK_INVALID as
 * for mtask_monitor_open. */
int mtask_link(uint64_t id);

/* Handles -------------------------------------------------------------------- */

/* A queue or socket on its way to a child task (see mtask_spawn_with). */
typedef struct mtask_handle {
    uint8_t kind;   /* which mtask_give_* made it */
    int32_t handle; /* the host's handle */
} mtask_handle;

struct mtask_queue;
struct mtask_listener;
struct mtask_stream;
struct mtask_udp;

/* Hands a queue or socket over: the giver's copy is released
 * (set to 0) and the handle moves to the child that mtask_spawn_with starts. */
mtask_handle mtask_give_queue(struct mtask_queue *queue);
mtask_handle mtask_give_listener(struct mtask_listener *listener);
mtask_handle mtask_give_stream(struct mtask_stream *stream);
mtask_handle mtask_give_udp(struct mtask_udp *socket);

/* mtask_spawn, moving `count` handles to the child (they move even when the
 * spawn fails, and are then closed). */
int mtask_spawn_with(const char *entry, mtask_bytes arg, const mtask_handle *handles, size_t count,
                     mtask_task *task);

/* mtask_spawn_with, for a child that may run on any host of the cluster
 * that runs this same component (on this host outside a cluster). It runs
 * at least once: again from its entry if its host dies (see
 * mtask_spawn_key). Only queues opened by name can be handed to it; any
 * other handle gives MTASK_INVALID. */
int mtask_spawn_anywhere(const char *entry, mtask_bytes arg, const mtask_handle *handles,
                         size_t count, mtask_task *task);

/* The key of the remote spawn that started this task, the same each time
 * it runs, as a string to free(); NULL if it was not placed anywhere in a
 * cluster. */
char *mtask_spawn_key(void);

/* In a child: the `index`th handle its parent gave it, if it is of that kind
 * (MTASK_INVALID otherwise). Each can be taken once. */
int mtask_taken_queue(size_t index, struct mtask_queue *queue);
int mtask_taken_listener(size_t index, struct mtask_listener *listener);
int mtask_taken_stream(size_t index, struct mtask_stream *stream);
int mtask_taken_udp(size_t index, struct mtask_udp *socket);

/* Queues --------------------------------------------------------------------- */

/* A FIFO queue of byte items, as multitask's Queue. Every put and get
 * suspends the caller once, so tasks interleave as in multitask. */
typedef struct mtask_queue {
    int32_t handle; /* the host's handle; 0 once released */
} mtask_queue;

/* A new queue holding at most `maxsize` items (0: no bound). It reaches
 * another task by mtask_give_queue, or by name (mtask_queue_open). */
int mtask_queue_new(uint32_t maxsize, mtask_queue *queue);

/* The queue called `name` that every task of this app shares; the first
 * task to open it sets `maxsize`. */
int mtask_queue_open(const char *name, uint32_t maxsize, mtask_queue *queue);

/* Adds a copy of `item` at the back, waiting while the queue is full. */
int mtask_queue_put(mtask_queue *queue, mtask_bytes item, int64_t timeout);

/* Takes the front item into `*item` (free it with mtask_bytes_free),
 * waiting while the queue is empty. MTASK_CLOSED once it is closed and
 * empty. */
int mtask_queue_get(mtask_queue *queue, int64_t timeout, mtask_bytes *item);

/* Items queued now. */
uint32_t mtask_queue_len(mtask_queue *queue);

/* Closes the queue: puts fail, gets drain what is left, then fail. */
void mtask_queue_close(mtask_queue *queue);

/* Releases this handle; the queue lives on while other handles do. */
void mtask_queue_drop(mtask_queue *queue);

/* TCP sockets ------------------------------------------------------------------ */

/* Addresses are text: "127.0.0.1:8080", "[::1]:8080". What a task may bind
 * or connect to is decided by the host (--listen, --connect); a refused
 * address gives MTASK_DENIED naming it. */

/* A TCP socket listening for connections. */
typedef struct mtask_listener {
    int32_t handle; /* the host's handle; 0 once released */
} mtask_listener;

/* A TCP connection. */
typedef struct mtask_stream {
    int32_t handle; /* the host's handle; 0 once released */
} mtask_stream;

/* Binds to `address` (port 0: any free port) and listens. */
int mtask_listen(const char *address, uint32_t backlog, mtask_listener *listener);

/* The address it listens on, as a C string to free(). */
int mtask_listener_address(mtask_listener *listener, char **address);

/* Waits for a connection; `peer` (may be NULL) gets its address to free(). */
int mtask_accept(mtask_listener *listener, int64_t timeout, mtask_stream *stream, char **peer);

/* Stops listening. */
void mtask_listener_close(mtask_listener *listener);

/* Connects to `address`. */
int mtask_connect(const char *address, int64_t timeout, mtask_stream *stream);

/* Receives at most `max` bytes into `*data` (free it with mtask_bytes_free),
 * waiting until some arrive; empty bytes mean the peer closed its side. */
int mtask_recv(mtask_stream *stream, size_t max, int64_t timeout, mtask_bytes *data);

/* Sends all of `data`, waiting as needed. */
int mtask_send_all(mtask_stream *stream, mtask_bytes data, int64_t timeout);

/* Closes the sending side: the peer's receives then see the end. */
int mtask_shutdown_send(mtask_stream *stream);

/* Closes the connection. */
void mtask_stream_close(mtask_stream *stream);

/* UDP sockets ------------------------------------------------------------------ */

/* A UDP socket: datagrams, each whole or not at all. Sending needs the
 * host's --connect grant for the destination. */
typedef struct mtask_udp {
    int32_t handle; /* the host's handle; 0 once released */
} mtask_udp;

/* Binds to `address` (port 0: any free port). */
int mtask_udp_bind(const char *address, mtask_udp *socket);

/* The address it is bound to, as a C string to free(). */
int mtask_udp_address(mtask_udp *socket, char **address);

/* Waits for a datagram: at most `max` bytes of it into `*data` (free it with
 * mtask_bytes_free); `sender` (may be NULL) gets its address to free(). */
int mtask_udp_recv_from(mtask_udp *socket, size_t max, int64_t timeout, mtask_bytes *data,
                        char **sender);

/* Sends `data` as one datagram to `address`. */
int mtask_udp_send_to(mtask_udp *socket, mtask_bytes data, const char *address, int64_t timeout);

/* Closes the socket. */
void mtask_udp_close(mtask_udp *socket);

/* Arguments -------------------------------------------------------------------- */

/* The program's arguments: the app's name, then what followed `--` on the
 * host's command line. The array lives as long as the task. */
char **mtask_args(int *argc);

#ifdef __cplusplus
}
#endif

#endif /* MTASK_H */
