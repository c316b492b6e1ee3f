package executor

import "hash/maphash"

// chunks is an append-only slice kept in fixed-size chunks, so that
// growing it never copies more than one chunk: the memory stores keep
// their records in chunks and index them from maps with small slots. The
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

// slotIndex finds the slots of a chunks by their keys. It maps a 64-bit
// hash of each key (see keyHash) to its slot: an entry is 16 bytes with
// no pointer, which a map keyed by the string would make 24 bytes that
// the garbage collector scans, and a lookup hashes the key once. The
// slot holds the key, which a lookup checks. The rare key whose hash an
// entry already holds goes in clash, by the key itself. The zero value
// is an index with no entries, which add cannot grow: see reset.
type slotIndex struct {
	byHash map[uint64]int32
	clash  map[string]int32 // keys whose hash byHash holds for another key
}

// keySeed seeds keyHash, once a process.
var keySeed = maphash.MakeSeed()

// keyHash returns the hash by which a slotIndex finds key.
func keyHash(key string) uint64 { return maphash.String(keySeed, key) }

// reset makes x an empty index with room for n keys.
func (x *slotIndex) reset(n int) { *x = slotIndex{byHash: make(map[uint64]int32, n)} }

// len returns the number of keys.
func (x *slotIndex) len() int { return len(x.byHash) + len(x.clash) }

// candidate returns the slot that hash h leads to, if any: it is key's
// slot if the slot holds key, and otherwise key's slot is clashed(key).
func (x *slotIndex) candidate(h uint64) (int32, bool) {
	i, ok := x.byHash[h]
	return i, ok
}

// clashed returns the slot of key if its hash leads to another key's
// slot (or did, when key was added).
func (x *slotIndex) clashed(key string) (int32, bool) {
	if len(x.clash) == 0 {
		return 0, false
	}
	i, ok := x.clash[key]
	return i, ok
}

// add adds key, whose hash is h and which the index does not hold, in
// slot i.
func (x *slotIndex) add(h uint64, key string, i int32) {
	if _, taken := x.byHash[h]; !taken {
		x.byHash[h] = i
		return
	}
	if x.clash == nil {
		x.clash = make(map[string]int32)
	}
	x.clash[key] = i
}

// remove removes key, whose hash is h and whose slot is i.
func (x *slotIndex) remove(h uint64, key string, i int32) {
	if j, ok := x.byHash[h]; ok && j == i {
		delete(x.byHash, h)
		return
	}
	delete(x.clash, key)
}
