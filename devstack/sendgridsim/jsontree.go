package sendgridsim

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strconv"
)

// maxJSONDepth bounds nesting; a mail send request needs about five levels.
const maxJSONDepth = 32

var errJSONShape = errors.New("sendgridsim: malformed JSON")

// decodeJSON parses data as exactly one JSON value into map[string]any,
// []any, string, json.Number, bool or nil. Unlike encoding/json it also
// reports which objects repeat a key (by path, e.g. "headers" or
// "personalizations.0.headers"), because SendGrid refuses duplicate header
// keys that a plain decode would silently merge.
func decodeJSON(data []byte) (v any, dupKeys map[string]bool, err error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	d := treeDecoder{dec: dec, dups: map[string]bool{}}
	v, err = d.value("", 0)
	if err != nil {
		return nil, nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, nil, errJSONShape // trailing data after the value
	}
	return v, d.dups, nil
}

type treeDecoder struct {
	dec  *json.Decoder
	dups map[string]bool
}

func (d *treeDecoder) value(path string, depth int) (any, error) {
	if depth > maxJSONDepth {
		return nil, errJSONShape
	}
	tok, err := d.dec.Token()
	if err != nil {
		return nil, err
	}
	delim, ok := tok.(json.Delim)
	if !ok {
		return tok, nil // string, json.Number, bool or nil
	}
	switch delim {
	case '{':
		obj := map[string]any{}
		for d.dec.More() {
			kt, err := d.dec.Token()
			if err != nil {
				return nil, err
			}
			key, ok := kt.(string)
			if !ok {
				return nil, errJSONShape
			}
			if _, seen := obj[key]; seen {
				d.dups[path] = true
			}
			val, err := d.value(join(path, key), depth+1)
			if err != nil {
				return nil, err
			}
			obj[key] = val
		}
		if _, err := d.dec.Token(); err != nil { // '}'
			return nil, err
		}
		return obj, nil
	case '[':
		arr := []any{}
		for i := 0; d.dec.More(); i++ {
			val, err := d.value(join(path, strconv.Itoa(i)), depth+1)
			if err != nil {
				return nil, err
			}
			arr = append(arr, val)
		}
		if _, err := d.dec.Token(); err != nil { // ']'
			return nil, err
		}
		return arr, nil
	}
	return nil, errJSONShape
}

// join builds SendGrid's dotted field path: "personalizations.0.to".
func join(path, elem string) string {
	if path == "" {
		return elem
	}
	return path + "." + elem
}
