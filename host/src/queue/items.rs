//! The items of one queue, in FIFO order, indexed by tag so that a get of
//! the first item with one of T tags costs O(T log n), not a scan of the
//! queue (a guest may hold thousands of items and ask for thousands of tags).

use std::collections::{BTreeMap, HashMap, VecDeque};

/// One item: the guest's bytes and an optional tag (`item` in WIT).
#[derive(Debug)]
pub(crate) struct Item {
    /// What a selective get asks for.
    pub(crate) tag: Option<u64>,
    /// The bytes, as the guest's SDK encoded them.
    pub(crate) data: Vec<u8>,
}

/// The host memory an item costs beyond its bytes: the entry that holds it
/// and its place in the tag index. Counted against the app's queue bytes so
/// that empty items cannot hold unbounded memory.
pub(crate) const ITEM_COST: usize = 64;

/// What an item costs its app: its bytes and [`ITEM_COST`].
pub(crate) fn cost(item: &Item) -> usize {
    item.data.len() + ITEM_COST
}

/// Items in order, with their tags indexed.
pub(crate) struct Items {
    /// Items by position: the smallest is the front.
    by_position: BTreeMap<u64, Item>,
    /// Positions of the items with each tag, front first.
    by_tag: HashMap<u64, VecDeque<u64>>,
    /// The position of the front item, or where one pushed in front goes + 1.
    front: u64,
    /// The position the next item pushed at the back gets.
    back: u64,
    /// The sum of [`cost`] over the items.
    cost: usize,
}

impl Items {
    pub(crate) fn new(items: Vec<Item>) -> Self {
        // Positions start in the middle, so that both ends have room.
        let mut this = Items {
            by_position: BTreeMap::new(),
            by_tag: HashMap::new(),
            front: 1 << 63,
            back: 1 << 63,
            cost: 0,
        };
        for item in items {
            this.push_back(item);
        }
        this
    }

    pub(crate) fn len(&self) -> usize {
        self.by_position.len()
    }

    /// What the items cost their app in all.
    pub(crate) fn cost(&self) -> usize {
        self.cost
    }

    pub(crate) fn push_back(&mut self, item: Item) {
        let position = self.back;
        self.back += 1;
        if let Some(tag) = item.tag {
            self.by_tag.entry(tag).or_default().push_back(position);
        }
        self.insert(position, item);
    }

    /// Puts `item` before every other (an item given back).
    pub(crate) fn push_front(&mut self, item: Item) {
        self.front -= 1;
        let position = self.front;
        if let Some(tag) = item.tag {
            self.by_tag.entry(tag).or_default().push_front(position);
        }
        self.insert(position, item);
    }

    fn insert(&mut self, position: u64, item: Item) {
        self.cost += cost(&item);
        self.by_position.insert(position, item);
    }

    /// Takes the front item.
    pub(crate) fn pop_front(&mut self) -> Option<Item> {
        let (position, item) = self.by_position.pop_first()?;
        self.front = position + 1;
        if let Some(tag) = item.tag {
            self.forget_tag(tag, position);
        }
        self.cost -= cost(&item);
        Some(item)
    }

    /// Takes the first item whose tag is one of `tags`.
    pub(crate) fn take_tagged(&mut self, tags: &[u64]) -> Option<Item> {
        let (tag, position) = tags
            .iter()
            .filter_map(|tag| Some((*tag, *self.by_tag.get(tag)?.front()?)))
            .min_by_key(|&(_, position)| position)?;
        self.forget_tag(tag, position);
        let item = self
            .by_position
            .remove(&position)
            .expect("indexed items exist");
        self.cost -= cost(&item);
        Some(item)
    }

    /// Drops `position`, the first of `tag`'s positions, from the index.
    fn forget_tag(&mut self, tag: u64, position: u64) {
        let positions = self.by_tag.get_mut(&tag).expect("a tagged item is indexed");
        let first = positions.pop_front();
        debug_assert_eq!(first, Some(position), "items of a tag leave in order");
        if positions.is_empty() {
            self.by_tag.remove(&tag);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(tag: Option<u64>, byte: u8) -> Item {
        Item {
            tag,
            data: vec![byte],
        }
    }

    fn bytes(item: Option<Item>) -> Option<u8> {
        item.map(|i| i.data[0])
    }

    #[test]
    fn fifo_and_tagged_takes_keep_the_order_of_the_rest() {
        let mut items = Items::new(vec![item(None, 1), item(Some(7), 2), item(Some(8), 3)]);
        items.push_back(item(Some(7), 4));
        assert_eq!(items.cost(), 4 * (1 + ITEM_COST));
        assert_eq!(
            bytes(items.take_tagged(&[8, 7])),
            Some(2),
            "the first of either tag"
        );
        assert_eq!(bytes(items.take_tagged(&[9])), None);
        items.push_front(item(Some(8), 0));
        assert_eq!(
            bytes(items.take_tagged(&[8])),
            Some(0),
            "given back, first again"
        );
        assert_eq!(bytes(items.pop_front()), Some(1));
        assert_eq!(bytes(items.pop_front()), Some(3));
        assert_eq!(bytes(items.take_tagged(&[7])), Some(4));
        assert_eq!(items.len(), 0);
        assert_eq!(items.cost(), 0);
        assert!(items.by_tag.is_empty(), "no index left behind");
    }
}
