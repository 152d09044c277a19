package config

import (
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// reTypeValue and reTypeNode find the offending value in a yaml type error:
// "cannot unmarshal !!int `5` into bool", "cannot unmarshal !!seq into string".
var (
	reTypeValue = regexp.MustCompile("!!\\w+ `(.*)` into")
	reTypeNode  = regexp.MustCompile(`!!(seq|map) into`)
	reDupKey    = regexp.MustCompile(`^mapping key "(.*)" already defined`)
)

// fieldAt names the field a type error message msg on line is about, from
// the document tree root, as a path an operator can find:
// listeners[0] ("web").http2. Several fields on one line (a flow mapping)
// are told apart by the value the message quotes. It returns "" when no
// field is on that line.
func fieldAt(root *yaml.Node, line int, msg string) string {
	if root == nil || line <= 0 {
		return ""
	}
	var found []fieldNode
	collectFields(root, line, "", &found)
	if len(found) == 0 {
		return ""
	}
	want := func(f fieldNode) bool { return false }
	if sm := reTypeValue.FindStringSubmatch(msg); sm != nil {
		want = func(f fieldNode) bool { return f.value.Kind == yaml.ScalarNode && f.value.Value == sm[1] }
	} else if sm := reDupKey.FindStringSubmatch(msg); sm != nil {
		want = func(f fieldNode) bool { return strings.HasSuffix(f.path, "."+sm[1]) || f.path == sm[1] }
	} else if sm := reTypeNode.FindStringSubmatch(msg); sm != nil {
		kind := map[string]yaml.Kind{"seq": yaml.SequenceNode, "map": yaml.MappingNode}[sm[1]]
		want = func(f fieldNode) bool { return f.value.Kind == kind }
	}
	for i := len(found) - 1; i >= 0; i-- { // innermost first
		if want(found[i]) {
			return found[i].path
		}
	}
	return found[len(found)-1].path
}

type fieldNode struct {
	path  string
	value *yaml.Node
}

// collectFields appends, outermost first, every field whose key or scalar
// value is on line.
func collectFields(n *yaml.Node, line int, prefix string, out *[]fieldNode) {
	n = deref(n)
	if n == nil {
		return
	}
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], deref(n.Content[i+1])
			p := k.Value
			if prefix != "" {
				p = prefix + "." + k.Value
			}
			if v != nil && (k.Line == line || (v.Kind == yaml.ScalarNode && v.Line == line)) {
				*out = append(*out, fieldNode{p, v})
			}
			collectFields(v, line, p, out)
		}
	case yaml.SequenceNode:
		for i, item := range n.Content {
			p := prefix + "[" + strconv.Itoa(i) + "]"
			if name := deref(mapValue(item, "name")); name != nil && name.Kind == yaml.ScalarNode && name.Value != "" {
				p += " (" + strconv.Quote(name.Value) + ")"
			}
			if it := deref(item); it != nil && it.Line == line {
				*out = append(*out, fieldNode{p, it})
			}
			collectFields(item, line, p, out)
		}
	}
}
