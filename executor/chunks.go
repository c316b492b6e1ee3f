package executor

// chunks is an append-only slice kept in fixed-size chunks, so that
// growing it never copies what it holds: the memory stores keep their
// records in chunks and index them from maps with small slots.
type chunks[T any] struct {
	c [][]T
	n int32
}

const (
	chunkBits = 7
	chunkLen  = 1 << chunkBits
	chunkMask = chunkLen - 1
)

// at returns the element at i, which must be below len.
func (s *chunks[T]) at(i int32) *T { return &s.c[i>>chunkBits][i&chunkMask] }

// len returns the number of elements.
func (s *chunks[T]) len() int32 { return s.n }

// push appends v and returns its index.
func (s *chunks[T]) push(v T) int32 {
	if s.n&chunkMask == 0 && int(s.n>>chunkBits) == len(s.c) {
		s.c = append(s.c, make([]T, chunkLen))
	}
	i := s.n
	*s.at(i) = v
	s.n++
	return i
}
