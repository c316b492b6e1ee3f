package strictjson

import (
	"bytes"
	"encoding/json"
)

// CountArrays walks the JSON value in raw and counts the elements of the
// arrays that class picks out, calling each as each of their elements
// starts, before it is read, so that a caller can refuse too many
// elements before it decodes any of them.
//
// class is asked about the arrays that a path of keys holds: the array
// that is the value of k in the top-level object is held by [k], and the
// one that is the value of k in an object that is an element of an array
// held by [k1, …, kn] and picked out is held by [k1, …, kn, k]. For
// {"kinds":[{"deps":[]}]} class is asked about ["kinds"], and about
// ["kinds", "deps"] only if it picked ["kinds"] out. class returns the
// array's class, or 0 to leave the array, and all within it, uncounted.
// Other arrays (the top-level value, an array's elements, values in
// objects within objects) are held by no path and are not counted.
//
// each gets the class of the array whose element starts and the counts of
// elements so far of the picked arrays that hold that element, outermost
// first, the last being the array's own, with this element. For the "x"
// in {"kinds":[{},{"deps":["x"]}]} it gets counts [2 1]. The first error
// that each returns ends the walk and is returned. keys and counts are
// valid only during the call that gets them.
//
// raw must be one JSON value that encoding/json's scanner has read, as a
// [json.RawMessage] from a Decoder is: CountArrays holds a frame for each
// level of nesting, which the scanner limits to 10,000, and it returns nil
// at the end of the value or at the first syntax error. It costs
// O(len(raw)) time, plus that of class and each.
func CountArrays(raw []byte, class func(keys []string) int, each func(class int, counts []int) error) error {
	// One frame per open object or array.
	type frame struct {
		object  bool
		key     string // an object's current key
		inValue bool   // an object's key was read, its value not yet
		class   int    // an array's class; 0 if class did not pick it
	}
	var stack []frame
	// The keys and counts of the picked arrays that are open, outermost
	// first: each is an element's value of the one before it.
	var keys []string
	var counts []int
	dec := json.NewDecoder(bytes.NewReader(raw))
	for {
		tok, err := dec.Token()
		if err != nil {
			return nil // the end of raw, which holds one value
		}
		n := len(stack)
		if n > 0 && stack[n-1].object && !stack[n-1].inValue {
			if key, ok := tok.(string); ok {
				stack[n-1].key, stack[n-1].inValue = key, true
				continue
			}
		}
		if d, ok := tok.(json.Delim); ok && (d == '}' || d == ']') {
			if stack[n-1].class != 0 {
				keys, counts = keys[:len(keys)-1], counts[:len(counts)-1]
			}
			stack = stack[:n-1]
		} else {
			// A value starts.
			if n > 0 && !stack[n-1].object && stack[n-1].class != 0 {
				// A picked array is the innermost one open: the
				// arrays within it that were picked have closed.
				counts[len(counts)-1]++
				if err := each(stack[n-1].class, counts); err != nil {
					return err
				}
			}
			if d, ok := tok.(json.Delim); ok { // '{' or '['
				child := frame{object: d == '{'}
				// An array held by a key of the top-level object, or of
				// an element of a picked array.
				if d == '[' && n > 0 && stack[n-1].object && (n == 1 || stack[n-2].class != 0) {
					keys = append(keys, stack[n-1].key)
					if child.class = class(keys); child.class != 0 {
						counts = append(counts, 0)
					} else {
						keys = keys[:len(keys)-1]
					}
				}
				stack = append(stack, child)
				continue
			}
		}
		// A value ended: its object expects a key again.
		if n = len(stack); n == 0 {
			return nil
		}
		stack[n-1].inValue = false
	}
}
