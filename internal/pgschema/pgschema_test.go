package pgschema_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/regengraph/regen/internal/pgschema"
)

func TestValid(t *testing.T) {
	tests := []struct {
		name string
		want bool
	}{
		{"regen", true}, {"_x", true}, {"a1_b2", true}, {strings.Repeat("a", 63), true},
		{"", false}, {strings.Repeat("a", 64), false}, {"1a", false}, {"pg_x", false},
		// The system schemas: Postgres reserves "pg_" (pg_catalog,
		// pg_toast, pg_temp_3), and information_schema is the SQL
		// standard's, where a superuser may create tables.
		{"pg_catalog", false}, {"pg_toast", false}, {"pg_temp", false}, {"pg_temp_3", false},
		{"pg_toast_temp_3", false}, {"information_schema", false},
		{"information_schema_x", true}, {"pg", true}, {"pgx", true}, {"public", true},
		{"Regen", false}, {"a-b", false}, {"a b", false}, {`a"b`, false}, {"é", false},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, pgschema.Valid(tt.name), "%q", tt.name)
	}
}

func TestStorable(t *testing.T) {
	tests := []struct {
		s    string
		want bool
	}{
		{"", true}, {"héllo", true}, {"a\x00b", false}, {"a\xffb", false},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, pgschema.Storable(tt.s), "%q", tt.s)
	}
}

// The key is the one pgstore's Migrate has always taken: another would
// let an older process migrate a schema beside a newer one.
func TestMigrateLockKey(t *testing.T) {
	assert.Equal(t, int64(7499691835209471212), pgschema.MigrateLockKey("regen"))
	assert.NotEqual(t, pgschema.MigrateLockKey("regen"), pgschema.MigrateLockKey("regen2"))
	assert.Equal(t, `"regen"`, pgschema.Quote("regen"))
}

// QuoteKey quotes keys whole up to 64 bytes, and past that cuts them at a
// character boundary, with their length, as the executor's errors do.
func TestQuoteKey(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
	}{
		{"short", "lecture-1", `"lecture-1"`},
		{"64 bytes", strings.Repeat("k", 64), `"` + strings.Repeat("k", 64) + `"`},
		{"long", strings.Repeat("k", 1200), `"` + strings.Repeat("k", 64) + `"… (1200 bytes)`},
		{"a character across the cut", strings.Repeat("k", 63) + "é" + strings.Repeat("k", 10), `"` + strings.Repeat("k", 63) + `"… (75 bytes)`},
		{"quoted as %q quotes", "a\x00b", `"a\x00b"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, pgschema.QuoteKey(tc.in))
		})
	}
}
