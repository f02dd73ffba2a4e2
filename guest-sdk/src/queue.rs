//! Queues between tasks: multitask's `Queue`, typed by serde, with
//! timeouts, tags and names.

use std::marker::PhantomData;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::bindings::mtask::task::queues as wit_queues;
use crate::{Handle, Result, decode, encode, nanos, timed};

/// A queue without an item type: what travels in a [`Handle`].
pub struct RawQueue(pub(crate) wit_queues::Queue);

/// A FIFO queue of `T` shared by tasks: multitask's `Queue`.
///
/// `put` waits while the queue is full and `get` while it is empty; the
/// `_timeout` variants give up with [`Error::Timeout`], having had no effect.
/// Each `put` and `get` lets the other tasks run once, even when it need not
/// wait. Items may carry a tag, and [`get_tagged`](Self::get_tagged) takes
/// the first item with one of the tags asked for, leaving the others in
/// order. Clone a queue to get another handle on it (to hand to a child).
pub struct Queue<T> {
    handle: wit_queues::Queue,
    item: PhantomData<fn(T) -> T>,
}

impl<T> Clone for Queue<T> {
    fn clone(&self) -> Self {
        Queue {
            handle: self.handle.clone(),
            item: PhantomData,
        }
    }
}

impl<T: Serialize + DeserializeOwned> Queue<T> {
    /// A new queue of at most `maxsize` items (0: no bound).
    pub fn new(maxsize: u32) -> Result<Self> {
        Self::with_items(maxsize, std::iter::empty::<T>())
    }

    /// A new queue of at most `maxsize` items (0: no bound) that starts with
    /// `items`, which may be more than `maxsize`.
    pub fn with_items(maxsize: u32, items: impl IntoIterator<Item = T>) -> Result<Self> {
        let items = items
            .into_iter()
            .map(|i| Self::item(None, &i))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self::from_wit(wit_queues::Queue::create(maxsize, &items)?))
    }

    /// The queue called `name` that every task of this app shares, made with
    /// `maxsize` by the first task that opens it.
    pub fn open(name: &str, maxsize: u32) -> Result<Self> {
        Ok(Self::from_wit(wit_queues::Queue::open(name, maxsize)?))
    }

    /// Adds `item` at the back, waiting while the queue is full.
    pub fn put(&self, item: &T) -> Result<()> {
        Ok(self.handle.put(&Self::item(None, item)?, None)?)
    }

    /// Like [`put`](Self::put), giving up after `timeout`.
    pub fn put_timeout(&self, item: &T, timeout: Duration) -> Result<()> {
        let put = self
            .handle
            .put(&Self::item(None, item)?, Some(nanos(timeout)));
        timed("Queue::put_timeout", Some(timeout), put)
    }

    /// Adds `item` with `tag`, for [`get_tagged`](Self::get_tagged).
    pub fn put_tagged(&self, tag: u64, item: &T) -> Result<()> {
        Ok(self.handle.put(&Self::item(Some(tag), item)?, None)?)
    }

    /// Takes the item at the front, waiting while the queue is empty.
    pub fn get(&self) -> Result<T> {
        decode(&self.handle.get(None)?.data)
    }

    /// Like [`get`](Self::get), giving up after `timeout`.
    pub fn get_timeout(&self, timeout: Duration) -> Result<T> {
        let got = self.handle.get(Some(nanos(timeout)));
        decode(&timed("Queue::get_timeout", Some(timeout), got)?.data)
    }

    /// Takes the first item tagged with one of `tags`, waiting until there
    /// is one; returns its tag and the item.
    pub fn get_tagged(&self, tags: &[u64]) -> Result<(u64, T)> {
        Self::tagged(self.handle.get_tagged(tags, None)?)
    }

    /// Like [`get_tagged`](Self::get_tagged), giving up after `timeout`.
    pub fn get_tagged_timeout(&self, tags: &[u64], timeout: Duration) -> Result<(u64, T)> {
        let got = self.handle.get_tagged(tags, Some(nanos(timeout)));
        Self::tagged(timed("Queue::get_tagged_timeout", Some(timeout), got)?)
    }

    /// Adds `item` if there is room now, without waiting; `false` if full.
    pub fn try_put(&self, item: &T) -> Result<bool> {
        Ok(self.handle.try_put(&Self::item(None, item)?)?)
    }

    /// Takes the front item if there is one now, without waiting.
    pub fn try_get(&self) -> Result<Option<T>> {
        self.handle.try_get()?.map(|i| decode(&i.data)).transpose()
    }

    /// Items queued now.
    pub fn len(&self) -> usize {
        self.handle.len() as usize
    }

    /// Whether no item is queued.
    pub fn is_empty(&self) -> bool {
        self.handle.is_empty()
    }

    /// Whether a put would wait.
    pub fn is_full(&self) -> bool {
        self.handle.is_full()
    }

    /// Closes the queue for every handle: waiting and later puts fail with
    /// [`Error::Closed`]; gets take what is left, then fail the same way.
    pub fn close(&self) {
        self.handle.close();
    }

    /// Turns it into a [`Handle`] to give to a child.
    pub fn into_handle(self) -> Handle {
        Handle::Queue(RawQueue(self.handle))
    }

    /// Takes a handle received with [`take_handles`] as a queue of `T`.
    pub fn from_raw(raw: RawQueue) -> Self {
        Self::from_wit(raw.0)
    }

    fn from_wit(handle: wit_queues::Queue) -> Self {
        Queue {
            handle,
            item: PhantomData,
        }
    }

    fn item(tag: Option<u64>, value: &T) -> Result<wit_queues::Item> {
        Ok(wit_queues::Item {
            tag,
            data: encode(value)?,
        })
    }

    fn tagged(item: wit_queues::Item) -> Result<(u64, T)> {
        Ok((item.tag.unwrap_or_default(), decode(&item.data)?))
    }
}
