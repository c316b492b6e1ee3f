package executor

// chunks is an append-only slice kept in fixed-size chunks, so that
// growing it never copies more than one chunk: the memory stores keep
// their records in chunks and index them from maps with small slots. The
// first chunk grows as it fills, as a slice does, up to the chunk size,
// so that a small set (the states of a short lecture: a MemoryStates
// holds one set per graph, thousands in a long-lived host) does not hold
// a whole chunk; the next ones are made whole.
type chunks[T any] struct {
	c [][]T
	n int32
}

const (
	chunkBits = 7
	chunkLen  = 1 << chunkBits
	chunkMask = chunkLen - 1
)

// at returns the element at i, which must be below len. The pointer is
// good until the next push.
func (s *chunks[T]) at(i int32) *T { return &s.c[i>>chunkBits][i&chunkMask] }

// len returns the number of elements.
func (s *chunks[T]) len() int32 { return s.n }

// reserve makes room for n elements in the first chunk, up to the chunk
// size, if nothing was pushed yet: a set whose size is known is made that
// size at once.
func (s *chunks[T]) reserve(n int) {
	if s.n == 0 && len(s.c) == 0 && n > 0 {
		s.c = append(s.c, make([]T, 0, min(n, chunkLen)))
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
		// The first chunk, full: doubled, but never past the chunk size,
		// which append's size classes would overshoot (159 or more).
		grown := make([]T, len(b), min(2*cap(b), chunkLen))
		copy(grown, b)
		s.c[c] = grown
	}
	s.c[c] = append(s.c[c], v)
	s.n++
	return i
}
