package pgstore_test

import (
	"fmt"
	"testing"

	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/executor/pgstore"
	"github.com/regengraph/regen/internal/testenv"
)

// BenchmarkReadDeps reads the inputs of the 360-segment lecture's
// timeline, 721 assets of a few hundred bytes (each segment's video and
// narration, and the music), as the executor does before it runs the
// node: one Get each (get), or one GetMany (getmany).
func BenchmarkReadDeps(b *testing.B) {
	pg := testenv.NewPostgres(b)
	s, err := pgstore.New(pg.Pool, pgstore.Options{Schema: pg.Schema})
	if err != nil {
		b.Fatal(err)
	}
	ctx := b.Context()
	if err := s.Migrate(ctx); err != nil {
		b.Fatal(err)
	}
	refs := make([]string, 2*360+1)
	for i := range refs {
		a := executor.Asset{URL: fmt.Sprintf("https://cdn.example.com/lecture/%d.mp4", i),
			Hash: fmt.Sprintf("%064x", i), Meta: map[string]string{"segment": fmt.Sprint(i / 2)}}
		if refs[i], err = s.Put(ctx, fmt.Sprintf("lecture/node-%d/%064x", i, i), a); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("get", func(b *testing.B) {
		for b.Loop() {
			for _, ref := range refs {
				if _, err := s.Get(ctx, ref); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
	b.Run("getmany", func(b *testing.B) {
		for b.Loop() {
			if _, err := s.GetMany(ctx, refs); err != nil {
				b.Fatal(err)
			}
		}
	})
}
