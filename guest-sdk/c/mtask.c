/*
 * mtask for C: the SDK over wit-bindgen's C bindings of mtask's WIT
 * ("task.h", generated at build time by `wit-bindgen c wit --world task`).
 *
 * It implements the world's exports (`entries`, `entry-types`, `run` and
 * `run-json`) over the
 * program's MTASK_ENTRIES table, and turns the bindings' tagged unions into
 * status codes plus a message kept for mtask_error().
 */
#include "mtask.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <wasi/api.h>

#include "task.h"

/* Memory ----------------------------------------------------------------------- */

/* The canonical ABI allocates every list and string the host passes in
 * through this. One spare byte, always NUL, makes each of them usable as a
 * C string (mtask_cstr) without a copy. It replaces the bindings' weak one. */
__attribute__((__export_name__("cabi_realloc")))
void *cabi_realloc(void *ptr, size_t old_size, size_t align, size_t new_size) {
    (void)old_size;
    if (new_size == 0)
        return (void *)align; /* the ABI's "empty" pointer; never freed */
    uint8_t *p = realloc(ptr, new_size + 1);
    if (!p)
        abort();
    p[new_size] = 0;
    return p;
}

/* Copies `len` bytes into a fresh buffer with the spare NUL. */
static mtask_bytes copy_bytes(const void *data, size_t len) {
    mtask_bytes b = {NULL, 0};
    if (len == 0)
        return b;
    b.data = cabi_realloc(NULL, 0, 1, len);
    memcpy(b.data, data, len);
    b.len = len;
    return b;
}

mtask_bytes mtask_str(const char *s) {
    mtask_bytes b = {(uint8_t *)s, s ? strlen(s) : 0};
    return b;
}

const char *mtask_cstr(mtask_bytes b) { return b.len ? (const char *)b.data : ""; }

void mtask_bytes_free(mtask_bytes *b) {
    if (b->len)
        free(b->data);
    b->data = NULL;
    b->len = 0;
}

/* Errors ----------------------------------------------------------------------- */

/* The message of this task's last failed call (tasks are instances, so a
 * global is per task). */
static char *last_error;
/* Where in it the message alone starts (past "task `ENTRY` failed: "). */
static size_t message_at;

static int set_error_v(int status, const char *fmt, va_list args) {
    char *message = NULL;
    if (vasprintf(&message, fmt, args) < 0)
        message = NULL;
    free(last_error);
    last_error = message;
    message_at = 0;
    return status;
}

static int set_error(int status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int set_error(int status, const char *fmt, ...) {
    va_list args;
    va_start(args, fmt);
    set_error_v(status, fmt, args);
    va_end(args);
    return status;
}

const char *mtask_error(void) { return last_error ? last_error : ""; }

const char *mtask_error_message(void) { return last_error ? last_error + message_at : ""; }

const char *mtask_status_name(int status) {
    static const char *const names[] = {
        "ok",      "timeout", "cancelled", "closed",  "denied",
        "limit",   "invalid", "io",        "failed",  "trapped",
        "task cancelled",     "task limit",
    };
    if (status < 0 || (size_t)status >= sizeof names / sizeof names[0])
        return "unknown";
    return names[status];
}

/* Turns a WIT `error` into a status and a message, and frees it. */
static int from_error(mtask_task_types_error_t *err) {
    static const int statuses[] = {
        [MTASK_TASK_TYPES_ERROR_TIMEOUT] = MTASK_TIMEOUT,
        [MTASK_TASK_TYPES_ERROR_CANCELLED] = MTASK_CANCELLED,
        [MTASK_TASK_TYPES_ERROR_CLOSED] = MTASK_CLOSED,
        [MTASK_TASK_TYPES_ERROR_DENIED] = MTASK_DENIED,
        [MTASK_TASK_TYPES_ERROR_LIMIT] = MTASK_LIMIT,
        [MTASK_TASK_TYPES_ERROR_INVALID] = MTASK_INVALID,
        [MTASK_TASK_TYPES_ERROR_IO] = MTASK_IO,
    };
    int status = statuses[err->tag];
    /* The cases with text share the union's first member's layout. */
    bool has_text = err->tag >= MTASK_TASK_TYPES_ERROR_DENIED;
    if (has_text)
        set_error(status, "%s: %.*s", mtask_status_name(status), (int)err->val.io.len,
                  (const char *)err->val.io.ptr);
    else
        set_error(status, "%s", mtask_status_name(status));
    mtask_task_types_error_free(err);
    return status;
}

/* from_error for the call named `call`, given `timeout`: a timeout's message
 * names the call. */
static int from_timed_error(const char *call, int64_t timeout, mtask_task_types_error_t *err) {
    int status = from_error(err);
    if (status == MTASK_TIMEOUT)
        set_error(status, "timeout: %s timed out after %g ms", call, (double)timeout / 1e6);
    return status;
}

/* Turns a child's WIT `task-error` into a status and a message, and frees it. */
static int from_task_error(const char *entry, mtask_task_types_task_error_t *err) {
    int status = MTASK_FAILED;
    const char *verb = "failed";
    task_string_t *text = NULL;
    switch (err->tag) {
    case MTASK_TASK_TYPES_TASK_ERROR_FAILED:
        text = &err->val.failed;
        break;
    case MTASK_TASK_TYPES_TASK_ERROR_TRAPPED:
        status = MTASK_TRAPPED, verb = "trapped", text = &err->val.trapped;
        break;
    case MTASK_TASK_TYPES_TASK_ERROR_CANCELLED:
        status = MTASK_TASK_CANCELLED, verb = "was cancelled";
        break;
    default:
        status = MTASK_TASK_LIMIT, verb = "went over a limit", text = &err->val.limit;
        break;
    }
    if (text) {
        set_error(status, "task `%s` %s: %.*s", entry, verb, (int)text->len,
                  (const char *)text->ptr);
        if (last_error)
            message_at = strlen(last_error) - text->len;
    } else
        set_error(status, "task `%s` %s", entry, verb);
    mtask_task_types_task_error_free(err);
    return status;
}

/* A WIT `option<duration>` from a timeout (negative: none). */
static uint64_t *timeout_arg(int64_t timeout, uint64_t *storage) {
    if (timeout < 0)
        return NULL;
    *storage = (uint64_t)timeout;
    return storage;
}

/* Entries ---------------------------------------------------------------------- */

int mtask_return(mtask_bytes *result, const void *data, size_t len) {
    mtask_bytes_free(result);
    *result = copy_bytes(data, len);
    return MTASK_OK;
}

int mtask_return_fmt(mtask_bytes *result, const char *fmt, ...) {
    char *text = NULL;
    va_list args;
    va_start(args, fmt);
    int len = vasprintf(&text, fmt, args);
    va_end(args);
    if (len < 0)
        mtask_panic("out of memory");
    mtask_return(result, text, (size_t)len);
    free(text);
    return MTASK_OK;
}

int mtask_fail(const char *fmt, ...) {
    va_list args;
    va_start(args, fmt);
    set_error_v(MTASK_FAILED, fmt, args);
    va_end(args);
    return MTASK_FAILED;
}

_Noreturn void mtask_panic(const char *fmt, ...) {
    char *text = NULL;
    va_list args;
    va_start(args, fmt);
    if (vasprintf(&text, fmt, args) < 0)
        text = NULL;
    va_end(args);
    fflush(stdout);
    task_string_t message;
    task_string_set(&message, text ? text : "panic");
    mtask_task_tasks_report_panic(&message);
    abort();
}

void exports_task_entries(task_list_string_t *ret) {
    size_t n = 0;
    while (mtask_entries[n].name)
        n++;
    ret->len = n;
    ret->ptr = calloc(n ? n : 1, sizeof(task_string_t));
    for (size_t i = 0; i < n; i++)
        task_string_dup(&ret->ptr[i], mtask_entries[i].name);
}

/* The entry named by the `len` bytes at `name`, or NULL. */
static const struct mtask_entry *find_entry(const uint8_t *name, size_t len) {
    for (const struct mtask_entry *e = mtask_entries; e->name; e++)
        if (strlen(e->name) == len && memcmp(e->name, name, len) == 0)
            return e;
    return NULL;
}

static void dup_or_empty(task_string_t *out, const char *text) {
    task_string_dup(out, text ? text : "");
}

void exports_task_entry_types(task_list_entry_type_t *ret) {
    size_t n = 0;
    while (mtask_entries[n].name)
        n++;
    ret->len = n;
    ret->ptr = calloc(n ? n : 1, sizeof(task_entry_type_t));
    for (size_t i = 0; i < n; i++) {
        task_string_dup(&ret->ptr[i].name, mtask_entries[i].name);
        dup_or_empty(&ret->ptr[i].arg, mtask_entries[i].arg_type);
        dup_or_empty(&ret->ptr[i].result, mtask_entries[i].result_type);
    }
}

/* Runs the entry named `entry` (freed here) on `arg` (freed here): MTASK_OK
 * with `*result` set, or its failure with `*err` set. */
static int run_entry(task_string_t *entry, mtask_bytes arg, mtask_bytes *result,
                     task_string_t *err) {
    /* Whole lines reach the host as they are printed, so tasks' output
     * interleaves line by line, as they ran. */
    setvbuf(stdout, NULL, _IOLBF, 0);
    const struct mtask_entry *found = find_entry(entry->ptr, entry->len);
    task_string_free(entry);
    if (!found) {
        /* The host checks names against `entries` first; this is a guard. */
        task_string_dup(err, "no such entry");
        mtask_bytes_free(&arg);
        return MTASK_INVALID;
    }
    result->data = NULL, result->len = 0;
    int status = found->run(arg, result);
    mtask_bytes_free(&arg);
    /* A reactor never runs exit(), which would flush stdio. */
    fflush(stdout);
    fflush(stderr);
    if (status != MTASK_OK) {
        mtask_bytes_free(result);
        const char *why = last_error ? last_error : mtask_status_name(status);
        task_string_dup(err, why);
    }
    return status;
}

bool exports_task_run(task_string_t *entry, task_list_u8_t *payload, task_list_u8_t *ret,
                      task_string_t *err) {
    mtask_bytes arg = {payload->ptr, payload->len}, result;
    if (run_entry(entry, arg, &result, err) != MTASK_OK)
        return false;
    ret->ptr = result.data;
    ret->len = result.len;
    return true;
}

/* Whether the `len` bytes at `s` are UTF-8, as a WIT string must be. */
static bool is_utf8(const uint8_t *s, size_t len) {
    for (size_t i = 0; i < len;) {
        uint8_t c = s[i];
        size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        if (!n || i + n > len)
            return false;
        for (size_t k = 1; k < n; k++)
            if ((s[i + k] & 0xC0) != 0x80)
                return false;
        i += n;
    }
    return true;
}

/* The JSON argument reaches the entry as its text's bytes, and the bytes
 * the entry returns are the JSON result, which must be text. */
bool exports_task_run_json(task_string_t *entry, task_string_t *json, task_string_t *ret,
                           task_string_t *err) {
    mtask_bytes arg = {json->ptr, json->len}, result;
    if (run_entry(entry, arg, &result, err) != MTASK_OK)
        return false;
    if (!is_utf8(result.data, result.len)) {
        mtask_bytes_free(&result);
        task_string_dup(err, "its result is not text, so it cannot be JSON");
        return false;
    }
    ret->ptr = result.data;
    ret->len = result.len;
    return true;
}

/* Scheduling ------------------------------------------------------------------- */

void mtask_yield(void) { mtask_task_tasks_yield_now(); }

void mtask_sleep(int64_t nanos) { mtask_task_tasks_sleep(nanos > 0 ? (uint64_t)nanos : 0); }

uint64_t mtask_current_id(void) { return mtask_task_tasks_current_id(); }

/* Child tasks ------------------------------------------------------------------ */

static mtask_task_tasks_borrow_task_t borrow_task(const mtask_task *task) {
    mtask_task_tasks_borrow_task_t b = {task->handle};
    return b;
}

static void release_task(mtask_task *task) {
    if (task->handle) {
        mtask_task_tasks_own_task_t own = {task->handle};
        mtask_task_tasks_task_drop_own(own);
    }
    free(task->entry);
    task->handle = 0;
    task->entry = NULL;
}

int mtask_spawn(const char *entry, mtask_bytes arg, mtask_task *task) {
    return mtask_spawn_with(entry, arg, NULL, 0, task);
}

int mtask_join(mtask_task *task, int64_t timeout, mtask_bytes *result) {
    if (result)
        result->data = NULL, result->len = 0;
    if (!task->handle)
        return set_error(MTASK_INVALID, "invalid: the task was joined or detached already");
    uint64_t storage;
    mtask_task_tasks_result_list_u8_task_error_t outcome;
    mtask_task_tasks_error_t err;
    if (!mtask_task_tasks_method_task_join(borrow_task(task), timeout_arg(timeout, &storage),
                                           &outcome, &err)) {
        int status = from_timed_error("mtask_join", timeout, &err);
        if (status != MTASK_TIMEOUT)
            release_task(task);
        return status;
    }
    int status = MTASK_OK;
    if (outcome.is_err) {
        status = from_task_error(task->entry, &outcome.val.err);
    } else if (result) {
        result->data = outcome.val.ok.ptr;
        result->len = outcome.val.ok.len;
    } else {
        task_list_u8_free(&outcome.val.ok);
    }
    release_task(task);
    return status;
}

int mtask_call(const char *entry, mtask_bytes arg, mtask_bytes *result) {
    mtask_task task;
    int status = mtask_spawn(entry, arg, &task);
    if (status != MTASK_OK)
        return status;
    return mtask_join(&task, MTASK_FOREVER, result);
}

/* MTASK_OK if `declared` and `meant` are the same type, or either is not said. */
static int same_type(const char *entry, const char *verb, const char *declared,
                     const char *meant) {
    if (!declared || !meant || strcmp(declared, meant) == 0)
        return MTASK_OK;
    return set_error(MTASK_INVALID, "invalid: entry `%s` %s %s, not %s", entry, verb, declared,
                     meant);
}

int mtask_spawn_typed(const char *entry, const char *arg_type, mtask_bytes arg,
                      const char *result_type, mtask_task *task) {
    task->handle = 0;
    task->entry = NULL;
    const struct mtask_entry *found = find_entry((const uint8_t *)entry, strlen(entry));
    if (!found)
        return set_error(MTASK_INVALID, "invalid: no entry named `%s` in MTASK_ENTRIES", entry);
    int status = same_type(entry, "takes", found->arg_type, arg_type);
    if (status == MTASK_OK)
        status = same_type(entry, "returns", found->result_type, result_type);
    if (status != MTASK_OK)
        return status;
    return mtask_spawn(entry, arg, task);
}

int mtask_call_typed(const char *entry, const char *arg_type, mtask_bytes arg,
                     const char *result_type, mtask_bytes *result) {
    mtask_task task;
    int status = mtask_spawn_typed(entry, arg_type, arg, result_type, &task);
    if (status != MTASK_OK)
        return status;
    return mtask_join(&task, MTASK_FOREVER, result);
}

void mtask_cancel(mtask_task *task) {
    if (task->handle)
        mtask_task_tasks_method_task_cancel(borrow_task(task));
}

void mtask_detach(mtask_task *task) { release_task(task); }

uint64_t mtask_task_id(const mtask_task *task) {
    return task->handle ? mtask_task_tasks_method_task_id(borrow_task(task)) : 0;
}

void mtask_cancel_tree(mtask_task *task) {
    if (task->handle)
        mtask_task_tasks_method_task_cancel_tree(borrow_task(task));
}

/* Monitors and links ------------------------------------------------------------ */

int mtask_monitor_open(uint64_t id, mtask_monitor *monitor) {
    monitor->handle = 0;
    monitor->id = id;
    mtask_task_tasks_own_task_monitor_t own;
    mtask_task_tasks_error_t err;
    if (!mtask_task_tasks_monitor(id, &own, &err))
        return from_error(&err);
    monitor->handle = own.__handle;
    return MTASK_OK;
}

int mtask_monitor_wait(mtask_monitor *monitor, int64_t timeout) {
    if (!monitor->handle)
        return set_error(MTASK_INVALID, "invalid: the monitor was closed");
    mtask_task_tasks_borrow_task_monitor_t b = {monitor->handle};
    uint64_t storage;
    mtask_task_tasks_result_void_task_error_t end;
    mtask_task_tasks_error_t err;
    if (!mtask_task_tasks_method_task_monitor_wait(b, timeout_arg(timeout, &storage), &end, &err))
        return from_timed_error("mtask_monitor_wait", timeout, &err);
    if (!end.is_err)
        return MTASK_OK;
    char name[32];
    snprintf(name, sizeof name, "#%llu", (unsigned long long)monitor->id);
    return from_task_error(name, &end.val.err);
}

void mtask_monitor_close(mtask_monitor *monitor) {
    if (monitor->handle) {
        mtask_task_tasks_own_task_monitor_t own = {monitor->handle};
        mtask_task_tasks_task_monitor_drop_own(own);
        monitor->handle = 0;
    }
}

int mtask_link(uint64_t id) {
    mtask_task_tasks_error_t err;
    return mtask_task_tasks_link(id, &err) ? MTASK_OK : from_error(&err);
}

/* Handles ---------------------------------------------------------------------- */

/* The kinds of handle a task can give, as the WIT `handle` variant tags them. */
#define KIND_QUEUE MTASK_TASK_TASKS_HANDLE_QUEUE
#define KIND_LISTENER MTASK_TASK_TASKS_HANDLE_TCP_LISTENER
#define KIND_STREAM MTASK_TASK_TASKS_HANDLE_TCP_STREAM
#define KIND_UDP MTASK_TASK_TASKS_HANDLE_UDP_SOCKET

/* Takes the handle out of its holder, which is left released (0). */
static mtask_handle take_out(uint8_t kind, int32_t *handle) {
    mtask_handle h = {kind, *handle};
    *handle = 0;
    return h;
}

mtask_handle mtask_give_queue(mtask_queue *queue) {
    return take_out(KIND_QUEUE, &queue->handle);
}

mtask_handle mtask_give_listener(mtask_listener *listener) {
    return take_out(KIND_LISTENER, &listener->handle);
}

mtask_handle mtask_give_stream(mtask_stream *stream) {
    return take_out(KIND_STREAM, &stream->handle);
}

mtask_handle mtask_give_udp(mtask_udp *socket) {
    return take_out(KIND_UDP, &socket->handle);
}

/* Closes a handle that was given but will not reach a child. */
static void drop_handle(mtask_handle h) {
    if (!h.handle)
        return;
    switch (h.kind) {
    case KIND_QUEUE:
        mtask_task_queues_queue_drop_own((mtask_task_queues_own_queue_t){h.handle});
        break;
    case KIND_LISTENER:
        mtask_task_net_tcp_listener_drop_own((mtask_task_net_own_tcp_listener_t){h.handle});
        break;
    case KIND_STREAM:
        mtask_task_net_tcp_stream_drop_own((mtask_task_net_own_tcp_stream_t){h.handle});
        break;
    case KIND_UDP:
        mtask_task_net_udp_socket_drop_own((mtask_task_net_own_udp_socket_t){h.handle});
        break;
    }
}

/* The spawns of both placements. */
static int spawn_placed(const char *entry, mtask_bytes arg, const mtask_handle *handles,
                        size_t count, mtask_task_tasks_placement_t placement, mtask_task *task);

int mtask_spawn_with(const char *entry, mtask_bytes arg, const mtask_handle *handles, size_t count,
                     mtask_task *task) {
    return spawn_placed(entry, arg, handles, count, MTASK_TASK_TASKS_PLACEMENT_HERE, task);
}

int mtask_spawn_anywhere(const char *entry, mtask_bytes arg, const mtask_handle *handles,
                         size_t count, mtask_task *task) {
    return spawn_placed(entry, arg, handles, count, MTASK_TASK_TASKS_PLACEMENT_ANYWHERE, task);
}

char *mtask_spawn_key(void) {
    task_string_t key;
    if (!mtask_task_tasks_spawn_key(&key))
        return NULL;
    char *out = malloc(key.len + 1);
    if (out) {
        memcpy(out, key.ptr, key.len);
        out[key.len] = 0;
    }
    task_string_free(&key);
    return out;
}

static int spawn_placed(const char *entry, mtask_bytes arg, const mtask_handle *handles,
                        size_t count, mtask_task_tasks_placement_t placement, mtask_task *task) {
    task->handle = 0;
    task->entry = NULL;
    task_string_t name;
    task_string_set(&name, entry);
    task_list_u8_t payload = {arg.data, arg.len};
    for (size_t i = 0; i < count; i++)
        if (!handles[i].handle) {
            /* Handle 0 would trap in the host call: refuse it here, and
             * close the others, as a spawn that fails would. */
            for (size_t j = 0; j < count; j++)
                drop_handle(handles[j]);
            return set_error(MTASK_INVALID, "invalid: handle %zu was given already or never open",
                             i);
        }
    /* Every variant case holds one handle, so the union's first member
     * stands for all of them. */
    mtask_task_tasks_handle_t moved[count ? count : 1];
    for (size_t i = 0; i < count; i++) {
        moved[i].tag = handles[i].kind;
        moved[i].val.task.__handle = handles[i].handle;
    }
    mtask_task_tasks_list_handle_t list = {moved, count};
    mtask_task_tasks_own_task_t own;
    mtask_task_tasks_error_t err;
    if (!mtask_task_tasks_spawn_at(&name, &payload, &list, placement, &own, &err))
        return from_error(&err);
    task->handle = own.__handle;
    task->entry = strdup(entry);
    return MTASK_OK;
}

/* The handles this task's parent gave it, fetched at the first ask. */
static mtask_task_tasks_list_handle_t taken;
static bool handles_fetched;

/* Takes the `index`th handle given to this task if it is of `kind`. */
static int take_handle(size_t index, uint8_t kind, int32_t *handle) {
    *handle = 0;
    if (!handles_fetched) {
        mtask_task_tasks_take_handles(&taken);
        handles_fetched = true;
    }
    if (index >= taken.len || taken.ptr[index].tag != kind || !taken.ptr[index].val.task.__handle)
        return set_error(MTASK_INVALID, "invalid: no handle of that kind at %zu", index);
    *handle = taken.ptr[index].val.task.__handle;
    taken.ptr[index].val.task.__handle = 0;
    return MTASK_OK;
}

int mtask_taken_queue(size_t index, mtask_queue *queue) {
    return take_handle(index, KIND_QUEUE, &queue->handle);
}

int mtask_taken_listener(size_t index, mtask_listener *listener) {
    return take_handle(index, KIND_LISTENER, &listener->handle);
}

int mtask_taken_stream(size_t index, mtask_stream *stream) {
    return take_handle(index, KIND_STREAM, &stream->handle);
}

int mtask_taken_udp(size_t index, mtask_udp *socket) {
    return take_handle(index, KIND_UDP, &socket->handle);
}

/* Queues ----------------------------------------------------------------------- */

static mtask_task_queues_borrow_queue_t borrow_queue(const mtask_queue *queue) {
    mtask_task_queues_borrow_queue_t b = {queue->handle};
    return b;
}

int mtask_queue_new(uint32_t maxsize, mtask_queue *queue) {
    queue->handle = 0;
    mtask_task_queues_list_item_t initial = {NULL, 0};
    mtask_task_queues_own_queue_t own;
    mtask_task_queues_error_t err;
    if (!mtask_task_queues_static_queue_create(maxsize, &initial, &own, &err))
        return from_error(&err);
    queue->handle = own.__handle;
    return MTASK_OK;
}

int mtask_queue_open(const char *name, uint32_t maxsize, mtask_queue *queue) {
    queue->handle = 0;
    task_string_t text;
    task_string_set(&text, name);
    mtask_task_queues_own_queue_t own;
    mtask_task_queues_error_t err;
    if (!mtask_task_queues_static_queue_open(&text, maxsize, &own, &err))
        return from_error(&err);
    queue->handle = own.__handle;
    return MTASK_OK;
}

int mtask_queue_put(mtask_queue *queue, mtask_bytes item, int64_t timeout) {
    uint64_t storage;
    mtask_task_queues_item_t wit_item = {.tag = {false, 0}, .data = {item.data, item.len}};
    mtask_task_queues_error_t err;
    if (!mtask_task_queues_method_queue_put(borrow_queue(queue), &wit_item,
                                            timeout_arg(timeout, &storage), &err))
        return from_timed_error("mtask_queue_put", timeout, &err);
    return MTASK_OK;
}

int mtask_queue_get(mtask_queue *queue, int64_t timeout, mtask_bytes *item) {
    item->data = NULL;
    item->len = 0;
    uint64_t storage;
    mtask_task_queues_item_t got;
    mtask_task_queues_error_t err;
    if (!mtask_task_queues_method_queue_get(borrow_queue(queue), timeout_arg(timeout, &storage),
                                            &got, &err))
        return from_timed_error("mtask_queue_get", timeout, &err);
    item->data = got.data.ptr;
    item->len = got.data.len;
    return MTASK_OK;
}

uint32_t mtask_queue_len(mtask_queue *queue) {
    return mtask_task_queues_method_queue_len(borrow_queue(queue));
}

void mtask_queue_close(mtask_queue *queue) {
    mtask_task_queues_method_queue_close(borrow_queue(queue));
}

void mtask_queue_drop(mtask_queue *queue) {
    drop_handle(take_out(KIND_QUEUE, &queue->handle));
}

/* TCP sockets ------------------------------------------------------------------ */

static mtask_task_net_borrow_tcp_listener_t borrow_listener(const mtask_listener *listener) {
    mtask_task_net_borrow_tcp_listener_t b = {listener->handle};
    return b;
}

static mtask_task_net_borrow_tcp_stream_t borrow_stream(const mtask_stream *stream) {
    mtask_task_net_borrow_tcp_stream_t b = {stream->handle};
    return b;
}

/* Hands a string the host allocated (NUL-terminated by cabi_realloc) to
 * the caller, or frees it. */
static void give_string(task_string_t *text, char **out) {
    if (out)
        *out = text->len ? (char *)text->ptr : strdup("");
    else
        task_string_free(text);
}

int mtask_listen(const char *address, uint32_t backlog, mtask_listener *listener) {
    listener->handle = 0;
    task_string_t text;
    task_string_set(&text, address);
    mtask_task_net_own_tcp_listener_t own;
    mtask_task_net_error_t err;
    if (!mtask_task_net_static_tcp_listener_bind(&text, backlog, &own, &err))
        return from_error(&err);
    listener->handle = own.__handle;
    return MTASK_OK;
}

int mtask_listener_address(mtask_listener *listener, char **address) {
    *address = NULL;
    task_string_t text;
    mtask_task_net_error_t err;
    if (!mtask_task_net_method_tcp_listener_local_address(borrow_listener(listener), &text, &err))
        return from_error(&err);
    give_string(&text, address);
    return MTASK_OK;
}

int mtask_accept(mtask_listener *listener, int64_t timeout, mtask_stream *stream, char **peer) {
    stream->handle = 0;
    if (peer)
        *peer = NULL;
    uint64_t storage;
    mtask_task_net_tuple2_own_tcp_stream_socket_address_t got;
    mtask_task_net_error_t err;
    if (!mtask_task_net_method_tcp_listener_accept(borrow_listener(listener),
                                                   timeout_arg(timeout, &storage), &got, &err))
        return from_timed_error("mtask_accept", timeout, &err);
    stream->handle = got.f0.__handle;
    give_string(&got.f1, peer);
    return MTASK_OK;
}

void mtask_listener_close(mtask_listener *listener) {
    drop_handle(take_out(KIND_LISTENER, &listener->handle));
}

int mtask_connect(const char *address, int64_t timeout, mtask_stream *stream) {
    stream->handle = 0;
    uint64_t storage;
    task_string_t text;
    task_string_set(&text, address);
    mtask_task_net_own_tcp_stream_t own;
    mtask_task_net_error_t err;
    if (!mtask_task_net_static_tcp_stream_connect(&text, timeout_arg(timeout, &storage), &own,
                                                  &err))
        return from_timed_error("mtask_connect", timeout, &err);
    stream->handle = own.__handle;
    return MTASK_OK;
}

int mtask_recv(mtask_stream *stream, size_t max, int64_t timeout, mtask_bytes *data) {
    data->data = NULL;
    data->len = 0;
    uint64_t storage;
    task_list_u8_t got;
    mtask_task_net_error_t err;
    uint32_t limit = max > UINT32_MAX ? UINT32_MAX : (uint32_t)max;
    if (!mtask_task_net_method_tcp_stream_recv(borrow_stream(stream), limit,
                                               timeout_arg(timeout, &storage), &got, &err))
        return from_timed_error("mtask_recv", timeout, &err);
    data->data = got.ptr;
    data->len = got.len;
    return MTASK_OK;
}

int mtask_send_all(mtask_stream *stream, mtask_bytes data, int64_t timeout) {
    uint64_t storage;
    task_list_u8_t bytes = {data.data, data.len};
    mtask_task_net_error_t err;
    if (!mtask_task_net_method_tcp_stream_send_all(borrow_stream(stream), &bytes,
                                                   timeout_arg(timeout, &storage), &err))
        return from_timed_error("mtask_send_all", timeout, &err);
    return MTASK_OK;
}

int mtask_shutdown_send(mtask_stream *stream) {
    mtask_task_net_error_t err;
    if (!mtask_task_net_method_tcp_stream_shutdown(borrow_stream(stream),
                                                   MTASK_TASK_NET_SHUTDOWN_HOW_WRITE, &err))
        return from_error(&err);
    return MTASK_OK;
}

void mtask_stream_close(mtask_stream *stream) {
    drop_handle(take_out(KIND_STREAM, &stream->handle));
}

/* UDP sockets ------------------------------------------------------------------ */

static mtask_task_net_borrow_udp_socket_t borrow_udp(const mtask_udp *socket) {
    mtask_task_net_borrow_udp_socket_t b = {socket->handle};
    return b;
}

int mtask_udp_bind(const char *address, mtask_udp *socket) {
    socket->handle = 0;
    task_string_t text;
    task_string_set(&text, address);
    mtask_task_net_own_udp_socket_t own;
    mtask_task_net_error_t err;
    if (!mtask_task_net_static_udp_socket_bind(&text, &own, &err))
        return from_error(&err);
    socket->handle = own.__handle;
    return MTASK_OK;
}

int mtask_udp_address(mtask_udp *socket, char **address) {
    *address = NULL;
    task_string_t text;
    mtask_task_net_error_t err;
    if (!mtask_task_net_method_udp_socket_local_address(borrow_udp(socket), &text, &err))
        return from_error(&err);
    give_string(&text, address);
    return MTASK_OK;
}

int mtask_udp_recv_from(mtask_udp *socket, size_t max, int64_t timeout, mtask_bytes *data,
                        char **sender) {
    data->data = NULL;
    data->len = 0;
    if (sender)
        *sender = NULL;
    uint64_t storage;
    mtask_task_net_tuple2_list_u8_socket_address_t got;
    mtask_task_net_error_t err;
    uint32_t limit = max > UINT32_MAX ? UINT32_MAX : (uint32_t)max;
    if (!mtask_task_net_method_udp_socket_recv_from(borrow_udp(socket), limit,
                                                    timeout_arg(timeout, &storage), &got, &err))
        return from_timed_error("mtask_udp_recv_from", timeout, &err);
    data->data = got.f0.ptr;
    data->len = got.f0.len;
    give_string(&got.f1, sender);
    return MTASK_OK;
}

int mtask_udp_send_to(mtask_udp *socket, mtask_bytes data, const char *address, int64_t timeout) {
    uint64_t storage;
    task_list_u8_t bytes = {data.data, data.len};
    task_string_t text;
    task_string_set(&text, address);
    uint32_t sent;
    mtask_task_net_error_t err;
    if (!mtask_task_net_method_udp_socket_send_to(borrow_udp(socket), &bytes, &text,
                                                  timeout_arg(timeout, &storage), &sent, &err))
        return from_timed_error("mtask_udp_send_to", timeout, &err);
    return MTASK_OK;
}

void mtask_udp_close(mtask_udp *socket) {
    drop_handle(take_out(KIND_UDP, &socket->handle));
}

/* Arguments -------------------------------------------------------------------- */

char **mtask_args(int *argc) {
    static char **argv;
    static int count;
    if (!argv) {
        __wasi_size_t n = 0, size = 0;
        if (__wasi_args_sizes_get(&n, &size) != 0)
            n = 0, size = 0;
        argv = calloc(n + 1, sizeof(char *));
        char *buf = malloc(size ? size : 1);
        if (!argv || !buf || (n && __wasi_args_get((uint8_t **)argv, (uint8_t *)buf) != 0))
            mtask_panic("cannot read the program's arguments");
        count = (int)n;
    }
    *argc = count;
    return argv;
}
