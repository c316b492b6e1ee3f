// Package strictjson checks what encoding/json lets through when it
// decodes into structs with DisallowUnknownFields: object keys that match
// a field only when case is ignored, and keys repeated in one object, of
// which encoding/json silently keeps the last.
//
// It is pure: no I/O beyond reading the given bytes.
package strictjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strings"
)

// KeyError is a key that [Check] refuses.
type KeyError struct {
	// Key is the key as written.
	Key string
	// Path locates the object that holds it, as in "kinds[2].deps[0]"; it
	// is empty for the top-level object.
	Path string
	// Duplicate says the key appeared earlier in the same object.
	Duplicate bool
	// Want is the allowed name that Key matches when case is ignored, or
	// "" if it matches none.
	Want string
	// Allowed lists the names that may be used, sorted.
	Allowed []string
}

func (e *KeyError) Error() string {
	where := ""
	if e.Path != "" {
		where = " in " + e.Path
	}
	switch {
	case e.Duplicate:
		return fmt.Sprintf("key %q appears twice in one object%s; give each field once", e.Key, where)
	case e.Want != "":
		return fmt.Sprintf("key %q%s does not match %q: names are case-sensitive", e.Key, where, e.Want)
	default:
		return fmt.Sprintf("unknown key %q%s; allowed keys: %s", e.Key, where, strings.Join(e.Allowed, ", "))
	}
}

// Check walks the JSON value in data and returns a [*KeyError] for the
// first object key that is not exactly one of names, or that repeats a
// key of its object. names holds every key allowed at any depth: Check
// does not know which object may hold which key, and leaves that to the
// decoder. Malformed JSON gives the decoder's syntax error; data after
// the value is ignored.
func Check(data []byte, names ...string) error {
	allowed := slices.Clone(names)
	slices.Sort(allowed)
	allowed = slices.Compact(allowed)
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	// One frame per open object or array.
	type frame struct {
		object  bool
		seen    map[string]bool // an object's keys so far
		key     string          // an object's current key, when inValue
		inValue bool            // an object's key was read, its value not yet
		index   int             // an array's current index
	}
	var stack []frame
	// path locates the innermost open object, from the outer ones.
	path := func() string {
		var b strings.Builder
		for _, f := range stack[:len(stack)-1] {
			if f.object {
				if b.Len() > 0 {
					b.WriteByte('.')
				}
				b.WriteString(f.key)
			} else {
				fmt.Fprintf(&b, "[%d]", f.index)
			}
		}
		return b.String()
	}
	// valueDone records that a value ended: the enclosing object expects
	// a key again, and the enclosing array moves on.
	valueDone := func() {
		if n := len(stack); n > 0 {
			if f := &stack[n-1]; f.object {
				f.inValue = false
			} else {
				f.index++
			}
		}
	}
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			// Check returns as soon as the value is complete.
			return fmt.Errorf("unexpected end of JSON input: %w", io.ErrUnexpectedEOF)
		}
		if err != nil {
			return err
		}
		if n := len(stack); n > 0 && stack[n-1].object && !stack[n-1].inValue {
			if key, ok := tok.(string); ok {
				f := &stack[n-1]
				if f.seen[key] {
					return &KeyError{Key: key, Path: path(), Duplicate: true, Allowed: allowed}
				}
				if _, ok := slices.BinarySearch(allowed, key); !ok {
					e := &KeyError{Key: key, Path: path(), Allowed: allowed}
					for _, name := range allowed {
						if strings.EqualFold(name, key) {
							e.Want = name
							break
						}
					}
					return e
				}
				f.seen[key], f.key, f.inValue = true, key, true
				continue
			}
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, frame{object: true, seen: map[string]bool{}})
			continue
		case json.Delim('['):
			stack = append(stack, frame{})
			continue
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
		}
		valueDone()
		if len(stack) == 0 {
			return nil // the value is complete
		}
	}
}

// Names returns the JSON keys of the struct types of values, and of the
// structs they hold through fields, slices, arrays and pointers, for
// [Check]. A field's key is its json tag's name, or its Go name; fields
// tagged "-" and unexported fields have none.
func Names(values ...any) []string {
	var names []string
	seen := map[reflect.Type]bool{}
	var walk func(t reflect.Type)
	walk = func(t reflect.Type) {
		for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Array {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct || seen[t] {
			return
		}
		seen[t] = true
		for i := range t.NumField() {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			switch name {
			case "-":
				continue
			case "":
				name = f.Name
			}
			names = append(names, name)
			walk(f.Type)
		}
	}
	for _, v := range values {
		walk(reflect.TypeOf(v))
	}
	slices.Sort(names)
	return slices.Compact(names)
}
