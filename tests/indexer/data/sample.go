// sample.go — fixture for the indexer's symbol tests (not built).
package sample

import "strings"

// Stack is a LIFO of strings.
type Stack struct {
	items []string
}

// Push adds s on top.
func (s *Stack) Push(v string) {
	s.items = append(s.items, v)
}

// Pop removes the top.
func (s *Stack) Pop() string {
	v := s.items[len(s.items)-1]
	s.items = s.items[:len(s.items)-1]
	return v
}

type Shouter interface {
	Shout() string
}

func Upper(s string) string {
	return strings.ToUpper(s)
}
