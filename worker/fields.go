package worker

import (
	"encoding/json"
	"net/http"
)

// fields are the members of a JSON object body, each decoded on its own so
// that a member of the wrong type gets that member's error code (as the
// hosted reference answers), never invalid_json.
type fields map[string]json.RawMessage

// readFields reads a JSON object body as readObject does.
func (s *Service) readFields(r *http.Request, allowEmpty bool) (fields, error) {
	var f fields
	err := s.readObject(r, allowEmpty, &f)
	return f, err
}

// notText stands for a member that is present but not a string: no
// validator accepts it, so the member's own check refuses it, in its turn.
const notText = "\x00"

// optionalText is a member that is absent, null or "" (nil: the server
// picks), a string, or anything else (notText).
func (f fields) optionalText(name string) *string {
	raw, present := f[name]
	if !present || string(raw) == "null" {
		return nil
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		s = notText
	}
	if s == "" {
		return nil
	}
	return &s
}

// text is a member that must be a string; anything else is notText.
func (f fields) text(name string) string {
	var s string
	if json.Unmarshal(f[name], &s) != nil {
		return notText
	}
	return s
}

// present is a member that, once present, must be a string: null or any
// other type is notText.
func (f fields) present(name string) *string {
	if _, ok := f[name]; !ok {
		return nil
	}
	s := f.text(name)
	return &s
}
