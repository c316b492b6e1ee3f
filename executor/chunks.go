package executor

import (
	"hash/maphash"
	"math/bits"
)

// chunks is an append-only slice kept in fixed-size chunks, so that
// growing it never copies more than one chunk: the memory stores keep
// their records in chunks and index them with a slotIndex. The
// first chunk grows as it fills, as a slice does, up to the chunk size,
// so that a small set (the states of a short lecture: a MemoryStates
// holds one set per graph, thousands in a long-lived host) does not hold
// a whole chunk; the next ones are made whole. A set whose size is known
// is made at once, by reserve.
type chunks[T any] struct {
	c [][]T
	n int32
}

const (
	chunkBits = 6
	chunkLen  = 1 << chunkBits
	chunkMask = chunkLen - 1
)

// at returns the element at i, which must be below len. The pointer is
// good until the next push.
func (s *chunks[T]) at(i int32) *T { return &s.c[i>>chunkBits][i&chunkMask] }

// len returns the number of elements.
func (s *chunks[T]) len() int32 { return s.n }

// reserve makes room for n elements, if nothing was pushed yet: a set
// whose size is known is made that size at once, in one allocation cut
// into chunks. The last chunk may be short; if it fills, it grows as the
// first does.
func (s *chunks[T]) reserve(n int) {
	if s.n != 0 || len(s.c) != 0 || n <= 0 {
		return
	}
	all := make([]T, n)
	s.c = make([][]T, 0, (n+chunkMask)>>chunkBits)
	for len(all) > 0 {
		k := min(len(all), chunkLen)
		s.c = append(s.c, all[:0:k])
		all = all[k:]
	}
}

// push appends v and returns its index.
func (s *chunks[T]) push(v T) int32 {
	i := s.n
	c := int(i >> chunkBits)
	if c == len(s.c) {
		size := chunkLen
		if c == 0 {
			size = 4 // the first grows by append
		}
		s.c = append(s.c, make([]T, 0, size))
	}
	if b := s.c[c]; len(b) == cap(b) {
		// The first chunk, or the last reserved one, full: doubled, but
		// never past the chunk size, which append's size classes would
		// overshoot (159 or more).
		grown := make([]T, len(b), min(2*cap(b), chunkLen))
		copy(grown, b)
		s.c[c] = grown
	}
	s.c[c] = append(s.c[c], v)
	s.n++
	return i
}

// slotIndex finds the slots of a chunks by their keys: a hash table with
// open addressing (linear probing), whose entries are 8 bytes with no
// pointer, which the garbage collector does not scan. An entry holds the
// top 32 bits of the key's hash (see keyHash), whose top bits are also
// its home in the table, and the slot; a lookup checks the key that a
// slot holds (given by keyAt), so keys whose hashes share those 32 bits
// are told apart. (A map[uint64]int32 took 16 bytes a slot, as many
// slots, and a few allocations more; a map[string]int32, 24 bytes that
// the garbage collector scans.) The table is at most three quarters full,
// so that a lookup that finds nothing probes a few entries, mostly in one
// cache line. The zero value is an index with no entries, which add
// cannot grow: see reset.
type slotIndex struct {
	e     []uint64 // 0 for a free entry; else the hash's top 32 bits << 32 | slot+1
	n     int      // entries in use
	shift uint8    // 64 - log2(len(e)): a hash's home is h >> shift
}

// keySeed seeds keyHash, once a process.
var keySeed = maphash.MakeSeed()

// keyHash returns the hash by which a slotIndex finds key.
func keyHash(key string) uint64 { return maphash.String(keySeed, key) }

// minIndex is the fewest entries of a slotIndex's table.
const minIndex = 8

// reset makes x an empty index with room for n keys.
func (x *slotIndex) reset(n int) {
	size := minIndex
	for size*3 < n*4 {
		size *= 2
	}
	*x = slotIndex{e: make([]uint64, size), shift: uint8(64 - bits.Len(uint(size)-1))}
}

// made reports whether reset made x.
func (x *slotIndex) made() bool { return x.e != nil }

// len returns the number of keys.
func (x *slotIndex) len() int { return x.n }

// find returns the slot of key, whose hash is h; keyAt returns the key
// that a slot holds.
func (x *slotIndex) find(h uint64, key string, keyAt func(int32) string) (int32, bool) {
	if x.n == 0 {
		return 0, false
	}
	mask := len(x.e) - 1
	tag := h >> 32
	for p := int(h >> x.shift); ; p = (p + 1) & mask {
		v := x.e[p]
		if v == 0 {
			return 0, false
		}
		if v>>32 == tag {
			if i := int32(uint32(v)) - 1; keyAt(i) == key {
				return i, true
			}
		}
	}
}

// add adds a key whose hash is h, and which the index does not hold, in
// slot i.
func (x *slotIndex) add(h uint64, i int32) {
	if (x.n+1)*4 > len(x.e)*3 {
		x.grow()
	}
	x.insert(h>>32<<32 | (uint64(i) + 1))
	x.n++
}

// insert puts entry v in the first free entry from its home.
func (x *slotIndex) insert(v uint64) {
	mask := len(x.e) - 1
	p := int(v >> x.shift)
	for x.e[p] != 0 {
		p = (p + 1) & mask
	}
	x.e[p] = v
}

// grow doubles the table. An entry's home is in its top bits, so the
// keys need not be hashed again.
func (x *slotIndex) grow() {
	old := x.e
	x.e = make([]uint64, 2*len(old))
	x.shift--
	for _, v := range old {
		if v != 0 {
			x.insert(v)
		}
	}
}

// rebuild makes the table anew, as small as reset makes it for the keys
// it holds, with each entry's slot i moved to move(i); move is called once
// a key, in the table's order. As for grow, the keys need not be hashed
// again.
func (x *slotIndex) rebuild(move func(i int32) int32) {
	old, n := x.e, x.n
	x.reset(n)
	for _, v := range old {
		if v != 0 {
			x.insert(v>>32<<32 | (uint64(move(int32(uint32(v))-1)) + 1))
		}
	}
	x.n = n
}

// remove removes the key whose hash is h and whose slot is i, and moves
// back the entries after it that it pushed away from their homes, so
// that the table needs no marks of removed entries.
func (x *slotIndex) remove(h uint64, i int32) {
	mask := len(x.e) - 1
	v := h>>32<<32 | (uint64(i) + 1)
	p := int(h >> x.shift)
	for x.e[p] != v {
		if x.e[p] == 0 {
			return // not there: nothing to remove (callers find it first)
		}
		p = (p + 1) & mask
	}
	x.e[p] = 0
	x.n--
	for q := (p + 1) & mask; x.e[q] != 0; q = (q + 1) & mask {
		// The entry at q moves to p unless its home is in (p, q],
		// cyclically.
		home := int(x.e[q] >> x.shift)
		if (home-p-1)&mask < (q-p)&mask {
			continue
		}
		x.e[p], x.e[q] = x.e[q], 0
		p = q
	}
}
