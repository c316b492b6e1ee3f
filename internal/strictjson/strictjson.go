// Package strictjson checks what encoding/json lets through when it
// decodes into structs with DisallowUnknownFields: object keys that match
// a field only when case is ignored, and keys repeated in one object, of
// which encoding/json silently keeps the last. It also counts the
// elements of chosen arrays before they are decoded ([CountArrays]), so
// that a caller can refuse more than it allows in memory about the size
// of the input, where encoding/json would first decode them all.
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
		// Worded as encoding/json words it, with where and what is allowed.
		return fmt.Sprintf("unknown field %q%s; allowed fields: %s", e.Key, where, strings.Join(e.Allowed, ", "))
	}
}

// Check walks the JSON value in data and returns a [*KeyError] for the
// first object key that is not exactly one of names, or that repeats a
// key of its object. names holds every key allowed at any depth: Check
// does not know which object may hold which key, and leaves that to the
// decoder ([CheckForm] does know). Malformed JSON gives the decoder's
// syntax error; data after the value is ignored.
func Check(data []byte, names ...string) error {
	every := &Object{Keys: slices.Compact(slices.Sorted(slices.Values(names)))}
	every.Nested = every
	return CheckForm(data, every)
}

// Object is the form of one kind of JSON object, for [CheckForm]: the
// keys it allows, and the forms of the objects within it.
type Object struct {
	// Keys are the keys the object allows, sorted, each once (as [Names]
	// gives them).
	Keys []string
	// Items gives, by key, the form of the objects that the key's value
	// holds: the value itself when it is an object, its elements when it
	// is an array.
	Items map[string]*Object
	// Nested is the form of the objects under the keys that Items does
	// not list. Nil leaves them unchecked, to the decoder.
	Nested *Object
}

// CheckForm walks the JSON value in data and returns a [*KeyError] for
// the first object key that its object's form does not allow, or that
// repeats a key of its object; form is the top-level object's. The error
// names the object that holds the key ("kinds[1].deps[0]") and the keys
// that it allows. Objects that no form covers are left to the decoder.
// Malformed JSON gives the decoder's syntax error; data after the value
// is ignored.
func CheckForm(data []byte, form *Object) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	// One frame per open object or array.
	type frame struct {
		object  bool
		form    *Object         // an object's form, or an array's elements'; nil for none
		seen    map[string]bool // an object's keys so far, when it has a form
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
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			// CheckForm returns as soon as the value is complete.
			return fmt.Errorf("unexpected end of JSON input: %w", io.ErrUnexpectedEOF)
		}
		if err != nil {
			return err
		}
		if n := len(stack); n > 0 && stack[n-1].object && !stack[n-1].inValue {
			if key, ok := tok.(string); ok {
				f := &stack[n-1]
				if f.form != nil {
					allowed := f.form.Keys
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
					f.seen[key] = true
				}
				f.key, f.inValue = key, true
				continue
			}
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			child := frame{object: tok == json.Delim('{')}
			switch n := len(stack); {
			case n == 0:
				if child.object {
					child.form = form
				}
			case stack[n-1].object:
				if p := stack[n-1]; p.form != nil {
					child.form = p.form.Nested
					if f, ok := p.form.Items[p.key]; ok {
						child.form = f
					}
				}
			default:
				child.form = stack[n-1].form // an array's elements share its form
			}
			if child.object && child.form != nil {
				child.seen = map[string]bool{}
			}
			stack = append(stack, child)
			continue
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
		}
		// A value ended: its object expects a key again, its array moves on.
		n := len(stack)
		if n == 0 {
			return nil // the value is complete
		}
		if f := &stack[n-1]; f.object {
			f.inValue = false
		} else {
			f.index++
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
