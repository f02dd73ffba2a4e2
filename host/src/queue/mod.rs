//! The queues themselves: items, waiting getters and putters, names, and
//! the bytes each app holds in them. `iface::queues` turns guest calls into
//! these operations; every task that an operation wakes is returned to the
//! caller, which schedules it, so wake order stays under the scheduler's
//! control (docs/design.md §4 rows 9–10).
//!
//! Everything the host keeps for an app's queues counts against its
//! `max_queue_bytes`, not only the items' bytes: a fixed cost per item, per
//! queue and per handle, the names of named queues, and the tags a waiting
//! getter accepts. So no pattern of calls (a million empty items, long
//! names, cloned handles) holds more host memory than the limit says.

mod items;

use std::collections::{HashMap, VecDeque};

use slab::Slab;

use items::{Items, cost};

use crate::ids::TaskKey;
use crate::wit_types::Error;
pub(crate) use items::Item;

/// A queue's slot in [`Queues`].
pub(crate) type QueueKey = usize;

/// A waiting operation's slot in [`Queues`].
pub(crate) type WaiterKey = usize;

pub(crate) use crate::ids::AppId;

/// What a queue costs its app beyond its items: its entry, its waiting
/// lines, the name's map entry.
pub(crate) const QUEUE_COST: usize = 256;

/// What a guest handle on a queue costs its app (its resource table entry).
pub(crate) const HANDLE_COST: usize = 64;

/// What a waiting operation costs its app, besides the tags it accepts.
const WAITER_COST: usize = 64;

/// The longest queue name, in bytes.
pub(crate) const MAX_NAME: usize = 1024;

/// One queue.
struct Queue {
    /// The app whose tasks may name it.
    app: AppId,
    /// Items, front first.
    items: Items,
    /// Puts wait while `items.len() >= maxsize`; 0: never.
    maxsize: usize,
    /// Closed: puts fail, gets fail once `items` is empty.
    closed: bool,
    /// Getters waiting, first come first served.
    getters: VecDeque<WaiterKey>,
    /// Putters waiting for room, first come first served.
    putters: VecDeque<WaiterKey>,
    /// Guest handles on it, plus one if it has a name.
    handles: usize,
    /// The length of its name, counted in its cost while it is named.
    name_len: usize,
}

impl Queue {
    fn has_room(&self) -> bool {
        self.maxsize == 0 || self.items.len() < self.maxsize
    }
}

/// What a waiting operation wants, and what it got.
pub(crate) struct Waiter {
    /// The waiting task.
    task: TaskKey,
    /// The app it counts against.
    app: AppId,
    /// The queue it waits on.
    queue: QueueKey,
    /// For a getter: the tags it accepts, sorted (`None`: any item).
    tags: Option<Vec<u64>>,
    /// For a putter: the item it waits to add.
    item: Option<Item>,
    /// Set when the wait is over: the item got (or `None` for a put).
    result: Option<Result<Option<Item>, Error>>,
}

/// Every queue of a host.
pub(crate) struct Queues {
    /// The queues, by key.
    queues: Slab<Queue>,
    /// Operations waiting on a queue.
    waiters: Slab<Waiter>,
    /// Named queues, per app.
    named: HashMap<(AppId, String), QueueKey>,
    /// Bytes held per app: queued items, items of waiting putters, and the
    /// fixed costs of queues, handles, names and waiters.
    bytes: HashMap<AppId, usize>,
    /// The most bytes an app may hold, unless `app_max_bytes` says otherwise.
    max_bytes: usize,
    /// Apps with a cap of their own.
    app_max_bytes: HashMap<AppId, usize>,
    /// The names of the cluster queues each app opened here: each counts
    /// for the app's life, as the stream it made stays on the server.
    cluster_names: std::collections::HashSet<(AppId, String)>,
}

/// What an attempt to put found.
pub(crate) enum PutNow {
    /// Added, or handed to a waiting getter, which must be woken.
    Done(Option<TaskKey>),
    /// No room: the item comes back.
    Full(Item),
    /// Closed, or over the byte limit.
    Failed(Error),
}

/// What an attempt to get found.
pub(crate) enum GetNow {
    /// An item, and a putter that got room and must be woken.
    Got(Item, Option<TaskKey>),
    /// Nothing that matches yet.
    Empty,
    /// Closed and nothing left that matches.
    Closed,
}

impl Queues {
    pub(crate) fn new(max_bytes: usize) -> Self {
        Self {
            queues: Slab::new(),
            waiters: Slab::new(),
            named: HashMap::new(),
            bytes: HashMap::new(),
            max_bytes,
            app_max_bytes: HashMap::new(),
            cluster_names: Default::default(),
        }
    }

    /// Counts `n` more bytes for `app`, unless that passes the limit.
    fn reserve(&mut self, app: AppId, n: usize) -> Result<(), Error> {
        let max = self
            .app_max_bytes
            .get(&app)
            .copied()
            .unwrap_or(self.max_bytes);
        let held = self.bytes.entry(app).or_default();
        if held.saturating_add(n) > max {
            let why = format!(
                "the app's queues may hold at most {max} bytes ({} held, {n} more asked)",
                *held
            );
            crate::apps::limit_reached(app, &why);
            return Err(Error::Limit(why));
        }
        *held += n;
        Ok(())
    }

    /// Counts what a handle on a cluster queue costs `app` here (its
    /// entry, its name), unless that passes the app's limit.
    pub(crate) fn charge(&mut self, app: AppId, n: usize) -> Result<(), Error> {
        self.reserve(app, n)
    }

    /// Counts the name of a cluster queue that `app` opens, the first time
    /// it does, for as long as the app runs (a queue and its name cost as
    /// much as a named queue here), unless that passes its limit.
    pub(crate) fn charge_name(&mut self, app: AppId, name: &str) -> Result<(), Error> {
        if name.len() > MAX_NAME {
            return Err(Error::Invalid(format!(
                "a queue name may be at most {MAX_NAME} bytes, not {}",
                name.len()
            )));
        }
        let key = (app, name.to_string());
        if !self.cluster_names.contains(&key) {
            self.reserve(app, name.len() + QUEUE_COST)?;
            self.cluster_names.insert(key);
        }
        Ok(())
    }

    /// Gives back what [`Queues::charge`] counted.
    pub(crate) fn refund(&mut self, app: AppId, n: usize) {
        self.unreserve(app, n);
    }

    fn unreserve(&mut self, app: AppId, n: usize) {
        if let Some(held) = self.bytes.get_mut(&app) {
            *held -= n;
        }
    }

    /// Bytes `app` holds now.
    pub(crate) fn bytes_of(&self, app: AppId) -> usize {
        self.bytes.get(&app).copied().unwrap_or(0)
    }

    /// Items `app`'s queues hold now (not those of waiting putters): a
    /// look at every queue, for `/metrics`.
    pub(crate) fn items_of(&self, app: AppId) -> usize {
        let queues = self.queues.iter().filter(|(_, q)| q.app == app);
        queues.map(|(_, q)| q.items.len()).sum()
    }

    /// Caps the bytes `app`'s queues may hold.
    pub(crate) fn set_max_bytes(&mut self, app: AppId, max: usize) {
        self.app_max_bytes.insert(app, max);
    }

    /// A new queue with one handle.
    pub(crate) fn create(
        &mut self,
        app: AppId,
        maxsize: u32,
        initial: Vec<Item>,
    ) -> Result<QueueKey, Error> {
        let size = initial.iter().map(cost).sum::<usize>() + QUEUE_COST + HANDLE_COST;
        self.reserve(app, size)?;
        Ok(self.queues.insert(Queue {
            app,
            items: Items::new(initial),
            maxsize: maxsize as usize,
            closed: false,
            getters: VecDeque::new(),
            putters: VecDeque::new(),
            handles: 1,
            name_len: 0,
        }))
    }

    /// The queue `name` of `app`, made on first use; one more handle on it.
    /// The name (and the queue) count against the app's bytes for as long
    /// as the app runs: a name is never forgotten.
    pub(crate) fn open(&mut self, app: AppId, name: &str, maxsize: u32) -> Result<QueueKey, Error> {
        if name.len() > MAX_NAME {
            return Err(Error::Invalid(format!(
                "a queue name may be at most {MAX_NAME} bytes, not {}",
                name.len()
            )));
        }
        if let Some(&key) = self.named.get(&(app, name.to_string())) {
            self.retain(key)?;
            return Ok(key);
        }
        self.reserve(app, name.len() + HANDLE_COST)?;
        let key = match self.create(app, maxsize, Vec::new()) {
            Ok(key) => key,
            Err(e) => {
                self.unreserve(app, name.len() + HANDLE_COST);
                return Err(e);
            }
        };
        let queue = &mut self.queues[key];
        queue.handles += 1; // the name's own
        queue.name_len = name.len();
        self.named.insert((app, name.to_string()), key);
        Ok(key)
    }

    /// One more handle on `key`, unless that passes the app's byte limit.
    pub(crate) fn retain(&mut self, key: QueueKey) -> Result<(), Error> {
        self.reserve(self.queues[key].app, HANDLE_COST)?;
        self.queues[key].handles += 1;
        Ok(())
    }

    /// One handle fewer; the last one frees the queue and its bytes.
    pub(crate) fn release(&mut self, key: QueueKey) {
        let Some(queue) = self.queues.get_mut(key) else {
            return;
        };
        queue.handles -= 1;
        let app = queue.app;
        self.unreserve(app, HANDLE_COST);
        if self.queues[key].handles == 0 {
            let queue = self.queues.remove(key);
            self.unreserve(queue.app, queue.items.cost() + QUEUE_COST + queue.name_len);
        }
    }

    pub(crate) fn len(&self, key: QueueKey) -> usize {
        self.queues[key].items.len()
    }

    pub(crate) fn is_full(&self, key: QueueKey) -> bool {
        !self.queues[key].has_room()
    }

    /// Puts `item` if it can go now: to the first waiting getter that
    /// accepts it, else at the back if there is room.
    pub(crate) fn put_now(&mut self, key: QueueKey, item: Item) -> PutNow {
        let queue = &self.queues[key];
        if queue.closed {
            return PutNow::Failed(Error::Closed);
        }
        let accepts = |w: &Waiter| {
            w.tags
                .as_ref()
                .is_none_or(|tags| item.tag.is_some_and(|t| tags.binary_search(&t).is_ok()))
        };
        if let Some(pos) = queue
            .getters
            .iter()
            .position(|&w| accepts(&self.waiters[w]))
        {
            let waiter_key = self.queues[key]
                .getters
                .remove(pos)
                .expect("position is in range");
            let waiter = &mut self.waiters[waiter_key];
            waiter.result = Some(Ok(Some(item)));
            return PutNow::Done(Some(waiter.task));
        }
        if !queue.has_room() {
            return PutNow::Full(item);
        }
        let app = queue.app;
        if let Err(e) = self.reserve(app, cost(&item)) {
            return PutNow::Failed(e);
        }
        self.queues[key].items.push_back(item);
        PutNow::Done(None)
    }

    /// Takes the first item that `tags` accepts, letting the first waiting
    /// putter in if that made room.
    pub(crate) fn get_now(&mut self, key: QueueKey, tags: Option<&[u64]>) -> GetNow {
        let queue = &mut self.queues[key];
        let taken = match tags {
            None => queue.items.pop_front(),
            Some(tags) => queue.items.take_tagged(tags),
        };
        let Some(item) = taken else {
            return if queue.closed {
                GetNow::Closed
            } else {
                GetNow::Empty
            };
        };
        let app = queue.app;
        self.unreserve(app, cost(&item));
        let woken = self.admit_putter(key);
        GetNow::Got(item, woken)
    }

    /// Moves the first waiting putter's item into the queue if there is room.
    fn admit_putter(&mut self, key: QueueKey) -> Option<TaskKey> {
        let queue = &mut self.queues[key];
        if !queue.has_room() {
            return None;
        }
        let waiter_key = queue.putters.pop_front()?;
        let waiter = &mut self.waiters[waiter_key];
        // Its bytes were counted when it began to wait.
        queue
            .items
            .push_back(waiter.item.take().expect("a putter holds its item"));
        waiter.result = Some(Ok(None));
        Some(waiter.task)
    }

    /// Makes `task` wait to get from `key`, for an item with one of `tags`
    /// (sorted, no repeats) if given; the tags count against the app's
    /// bytes while it waits.
    pub(crate) fn wait_get(
        &mut self,
        key: QueueKey,
        task: TaskKey,
        tags: Option<Vec<u64>>,
    ) -> Result<WaiterKey, Error> {
        let app = self.queues[key].app;
        self.reserve(app, waiter_cost(tags.as_deref()))?;
        let waiter = self.waiters.insert(Waiter {
            task,
            app,
            queue: key,
            tags,
            item: None,
            result: None,
        });
        self.queues[key].getters.push_back(waiter);
        Ok(waiter)
    }

    /// Makes `task` wait to put `item` on `key`; its bytes count from now.
    pub(crate) fn wait_put(
        &mut self,
        key: QueueKey,
        task: TaskKey,
        item: Item,
    ) -> Result<WaiterKey, Error> {
        let app = self.queues[key].app;
        self.reserve(app, cost(&item) + waiter_cost(None))?;
        let waiter = self.waiters.insert(Waiter {
            task,
            app,
            queue: key,
            tags: None,
            item: Some(item),
            result: None,
        });
        self.queues[key].putters.push_back(waiter);
        Ok(waiter)
    }

    /// The result of a wait, if it is over (then the waiter is gone).
    /// Records that the task behind `waiter` is now `task` (it moved to
    /// another shard while runnable).
    pub(crate) fn rewait(&mut self, waiter: WaiterKey, task: TaskKey) {
        if let Some(w) = self.waiters.get_mut(waiter) {
            w.task = task;
        }
    }

    pub(crate) fn take_result(&mut self, waiter: WaiterKey) -> Option<Result<Option<Item>, Error>> {
        self.waiters[waiter].result.as_ref()?;
        let waiter = self.waiters.remove(waiter);
        self.forget_waiter(&waiter);
        waiter.result
    }

    /// Frees what a waiter that is gone cost its app itself (its item, if
    /// any, is accounted for by whoever took it out).
    fn forget_waiter(&mut self, waiter: &Waiter) {
        self.unreserve(waiter.app, waiter_cost(waiter.tags.as_deref()));
    }

    /// Ends a wait that is still pending (a timeout, or its task went away).
    /// An item handed to a getter that will not take it goes back to the
    /// front of the queue; a putter's item is dropped, and its bytes freed.
    pub(crate) fn withdraw(&mut self, waiter_key: WaiterKey) {
        let waiter = self.waiters.remove(waiter_key);
        self.forget_waiter(&waiter);
        if let Some(item) = &waiter.item {
            self.unreserve(waiter.app, cost(item));
        }
        let Some(queue) = self.queues.get_mut(waiter.queue) else {
            return;
        };
        queue.getters.retain(|&w| w != waiter_key);
        queue.putters.retain(|&w| w != waiter_key);
        if let Some(Ok(Some(item))) = waiter.result {
            // A handed-over item is not counted; back in the queue, it is.
            *self.bytes.entry(waiter.app).or_default() += cost(&item);
            queue.items.push_front(item);
        }
    }

    /// Closes `key`: every waiting getter and putter gets `closed`. Returns
    /// the tasks to wake, in the order they waited (getters first).
    pub(crate) fn close(&mut self, key: QueueKey) -> Vec<TaskKey> {
        let queue = &mut self.queues[key];
        queue.closed = true;
        let waiting: Vec<WaiterKey> = queue
            .getters
            .drain(..)
            .chain(queue.putters.drain(..))
            .collect();
        waiting
            .into_iter()
            .map(|w| {
                let waiter = &mut self.waiters[w];
                waiter.result = Some(Err(Error::Closed));
                let (task, app) = (waiter.task, waiter.app);
                if let Some(item) = waiter.item.take() {
                    self.unreserve(app, cost(&item));
                }
                task
            })
            .collect()
    }
}

/// What a waiting operation costs its app: its entry, and the tags a getter
/// accepts.
fn waiter_cost(tags: Option<&[u64]>) -> usize {
    WAITER_COST + tags.map_or(0, std::mem::size_of_val)
}

/// The tags a selective get accepts, sorted and without repeats, so that a
/// put checks each waiting getter in O(log tags).
pub(crate) fn tag_set(mut tags: Vec<u64>) -> Vec<u64> {
    tags.sort_unstable();
    tags.dedup();
    tags
}
