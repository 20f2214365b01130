package ec2dns

import (
	"container/list"
	"time"
)

// entry is a cached answer; an empty name caches "no such instance".
type entry struct {
	name    string
	expires time.Time
}

// lru is a size-bounded cache; the caller holds the Resolver's lock.
type lru struct {
	max   int
	order *list.List // front = most recently used; values are *lruItem
	items map[string]*list.Element
}

type lruItem struct {
	key string
	entry
}

func newLRU(max int) *lru {
	return &lru{max: max, order: list.New(), items: map[string]*list.Element{}}
}

func (c *lru) get(key string, now time.Time) (entry, bool) {
	el, ok := c.items[key]
	if !ok {
		return entry{}, false
	}
	it := el.Value.(*lruItem)
	if !now.Before(it.expires) {
		c.order.Remove(el)
		delete(c.items, key)
		return entry{}, false
	}
	c.order.MoveToFront(el)
	return it.entry, true
}

func (c *lru) put(key string, e entry) {
	if el, ok := c.items[key]; ok {
		el.Value.(*lruItem).entry = e
		c.order.MoveToFront(el)
		return
	}
	c.items[key] = c.order.PushFront(&lruItem{key: key, entry: e})
	for c.order.Len() > c.max {
		oldest := c.order.Back()
		c.order.Remove(oldest)
		delete(c.items, oldest.Value.(*lruItem).key)
	}
}

func (c *lru) len() int { return c.order.Len() }
