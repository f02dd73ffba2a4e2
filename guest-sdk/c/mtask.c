/*
 * mtask for C: the SDK over wit-bindgen's C bindings of mtask's WIT
 * ("task.h", generated at build time by `wit-bindgen c wit --world task`).
 *
 * It implements the world's two exports (`entries` and `run`) over the
 * program's MTASK_ENTRIES table, and turns the bindings' tagged unions into
 * status codes plus a message kept for mtask_error().
 */
#include "mtask.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

static int set_error_v(int status, const char *fmt, va_list args) {
    char *message = NULL;
    if (vasprintf(&message, fmt, args) < 0)
        message = NULL;
    free(last_error);
    last_error = message;
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
    if (text)
        set_error(status, "task `%s` %s: %.*s", entry, verb, (int)text->len,
                  (const char *)text->ptr);
    else
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

/* The entry the task runs, for mtask_panic's message. */
static const char *current_entry = "?";

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

bool exports_task_run(task_string_t *entry, task_list_u8_t *payload, task_list_u8_t *ret,
                      task_string_t *err) {
    /* Whole lines reach the host as they are printed, so tasks' output
     * interleaves line by line, as they ran. */
    setvbuf(stdout, NULL, _IOLBF, 0);
    const struct mtask_entry *found = NULL;
    for (const struct mtask_entry *e = mtask_entries; e->name; e++)
        if (strlen(e->name) == entry->len && memcmp(e->name, entry->ptr, entry->len) == 0)
            found = e;
    if (!found) {
        /* The host checks names against `entries` first; this is a guard. */
        task_string_dup(err, "no such entry");
        task_string_free(entry);
        task_list_u8_free(payload);
        return false;
    }
    current_entry = found->name;
    task_string_free(entry);

    mtask_bytes arg = {payload->ptr, payload->len};
    mtask_bytes result = {NULL, 0};
    int status = found->run(arg, &result);
    mtask_bytes_free(&arg);
    /* A reactor never runs exit(), which would flush stdio. */
    fflush(stdout);
    fflush(stderr);

    if (status != MTASK_OK) {
        mtask_bytes_free(&result);
        const char *why = last_error ? last_error : mtask_status_name(status);
        task_string_dup(err, why);
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
    task->handle = 0;
    task->entry = NULL;
    task_string_t name;
    task_string_set(&name, entry);
    task_list_u8_t payload = {arg.data, arg.len};
    mtask_task_tasks_list_handle_t handles = {NULL, 0};
    mtask_task_tasks_own_task_t own;
    mtask_task_tasks_error_t err;
    if (!mtask_task_tasks_spawn(&name, &payload, &handles, &own, &err))
        return from_error(&err);
    task->handle = own.__handle;
    task->entry = strdup(entry);
    return MTASK_OK;
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
        int status = from_error(&err);
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

void mtask_cancel(mtask_task *task) {
    if (task->handle)
        mtask_task_tasks_method_task_cancel(borrow_task(task));
}

void mtask_detach(mtask_task *task) { release_task(task); }

uint64_t mtask_task_id(const mtask_task *task) {
    return task->handle ? mtask_task_tasks_method_task_id(borrow_task(task)) : 0;
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
        return from_error(&err);
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
        return from_error(&err);
    item->data = got.data.ptr;
    item->len = got.data.len;
    return MTASK_OK;
}

uint32_t mtask_queue_len(mtask_queue *queue) {
    return mtask_task_queues_method_queue_len(borrow_queue(queue));
}

void mtask_queue_close(mtask_queue *queue) { mtask_task_queues_method_queue_close(borrow_queue(queue)); }

void mtask_queue_drop(mtask_queue *queue) {
    if (queue->handle) {
        mtask_task_queues_own_queue_t own = {queue->handle};
        mtask_task_queues_queue_drop_own(own);
    }
    queue->handle = 0;
}
