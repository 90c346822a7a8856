package torchio

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/nlpodyssey/gopickle/pickle"
	"github.com/nlpodyssey/gopickle/types"
)

// The rebuild functions among the allowed globals.
const (
	fnRebuildTensor    = "torch._utils._rebuild_tensor_v2"
	fnRebuildParameter = "torch._utils._rebuild_parameter"
)

// storageClass is the value of an allowed torch.*Storage global: the
// element type of its storages.
type storageClass dtype

// storageClasses maps the allowed storage globals to their element types,
// those ReadStateDict converts and those it names in errors.
var storageClasses = map[string]storageClass{
	"torch.FloatStorage":    {name: "float32", size: 4},
	"torch.DoubleStorage":   {name: "float64", size: 8},
	"torch.HalfStorage":     {name: "float16", size: 2},
	"torch.BFloat16Storage": {name: "bfloat16", size: 2},
	"torch.LongStorage":     {name: "int64", size: 8},
	"torch.IntStorage":      {name: "int32", size: 4},
	"torch.ShortStorage":    {name: "int16", size: 2},
	"torch.CharStorage":     {name: "int8", size: 1},
	"torch.ByteStorage":     {name: "uint8", size: 1},
	"torch.BoolStorage":     {name: "bool", size: 1},
}

// rebuildFunc is the value of an allowed rebuild global. Calling it
// records its arguments, which archive.view checks.
type rebuildFunc string

func (f rebuildFunc) Call(args ...any) (any, error) {
	return &rebuilt{fn: string(f), args: args}, nil
}

// rebuilt is the result of a rebuild function: its name and arguments.
type rebuilt struct {
	fn   string
	args []any
}

// arg returns argument i, nil if there are fewer.
func (r *rebuilt) arg(i int) any {
	if i < len(r.args) {
		return r.args[i]
	}
	return nil
}

// persistentID is a persistent id of the pickle, which archive.storage
// resolves.
type persistentID struct{ v any }

// findClass resolves a global of the pickle: one of the allowed globals
// (see the package documentation), or an error naming it.
func findClass(module, name string) (any, error) {
	full := module + "." + name
	if c, ok := storageClasses[full]; ok {
		return c, nil
	}
	switch full {
	case "collections.OrderedDict":
		return &types.OrderedDictClass{}, nil
	case fnRebuildTensor, fnRebuildParameter:
		return rebuildFunc(full), nil
	}
	return nil, fmt.Errorf("global %s is not allowed: a state_dict holds only tensors (of collections.OrderedDict, %s, %s and torch.*Storage); to import a pickled model, save its state_dict()",
		full, fnRebuildTensor, fnRebuildParameter)
}

// Arguments of the opcodes table, besides a fixed number of bytes.
const (
	argLines = -1 // two newline-terminated lines
	argLen1  = -2 // a 1-byte length, then that many bytes
	argLen4  = -3 // a 4-byte little-endian length, then that many bytes
)

// opcodes gives the argument of each opcode that PyTorch 1.13's
// torch.load(weights_only=True) accepts (torch/_weights_only_unpickler.py)
// but NEWOBJ, which none of the allowed globals supports: a number of
// bytes, or one of the arg constants.
var opcodes = map[byte]int{
	'a':    0,        // APPEND
	'e':    0,        // APPENDS
	'h':    1,        // BINGET
	'J':    4,        // BININT
	'K':    1,        // BININT1
	'M':    2,        // BININT2
	'Q':    0,        // BINPERSID
	'q':    1,        // BINPUT
	'X':    argLen4,  // BINUNICODE
	'b':    0,        // BUILD
	'}':    0,        // EMPTY_DICT
	']':    0,        // EMPTY_LIST
	'\x8f': 0,        // EMPTY_SET
	')':    0,        // EMPTY_TUPLE
	'c':    argLines, // GLOBAL
	'\x8a': argLen1,  // LONG1
	'j':    4,        // LONG_BINGET
	'r':    4,        // LONG_BINPUT
	'(':    0,        // MARK
	'\x89': 0,        // NEWFALSE
	'\x88': 0,        // NEWTRUE
	'N':    0,        // NONE
	'\x80': 1,        // PROTO
	'R':    0,        // REDUCE
	's':    0,        // SETITEM
	'u':    0,        // SETITEMS
	'U':    argLen1,  // SHORT_BINSTRING
	'.':    0,        // STOP
	't':    0,        // TUPLE
	'\x85': 0,        // TUPLE1
	'\x86': 0,        // TUPLE2
	'\x87': 0,        // TUPLE3
}

// checkPickle checks that p up to its STOP holds only the opcodes of the
// opcodes table, each with its argument inside p, and only globals
// findClass allows. Unpickling such a pickle runs no code, and no
// argument makes gopickle allocate more than p's size.
func checkPickle(p []byte) error {
	for i := 0; i < len(p); {
		op, at := p[i], i
		arg, ok := opcodes[op]
		if !ok {
			return fmt.Errorf("opcode 0x%02x at offset %d is not one torch.load(weights_only=True) accepts", op, at)
		}
		i++
		need := arg // bytes of the argument
		switch arg {
		case argLines:
			module, rest, ok1 := bytes.Cut(p[i:], []byte("\n"))
			name, _, ok2 := bytes.Cut(rest, []byte("\n"))
			if !ok1 || !ok2 {
				return fmt.Errorf("GLOBAL at offset %d is truncated", at)
			}
			if _, err := findClass(string(module), string(name)); err != nil {
				return err
			}
			need = len(module) + len(name) + 2
		case argLen1:
			need = 1
			if i < len(p) {
				need += int(p[i])
			}
		case argLen4:
			need = 4
			if len(p)-i >= 4 {
				n := binary.LittleEndian.Uint32(p[i:])
				if uint64(n) > uint64(len(p)-i-4) {
					return fmt.Errorf("opcode 0x%02x at offset %d is truncated", op, at)
				}
				need += int(n)
			}
		}
		if need > len(p)-i {
			return fmt.Errorf("opcode 0x%02x at offset %d is truncated", op, at)
		}
		i += need
		if op == '.' {
			return nil
		}
	}
	return errors.New("no STOP opcode")
}

// unpickle checks the pickle p (checkPickle) and unpickles it.
func unpickle(p []byte) (v any, err error) {
	if err := checkPickle(p); err != nil {
		return nil, err
	}
	u := pickle.NewUnpickler(bytes.NewReader(p))
	u.FindClass = findClass
	u.PersistentLoad = func(pid any) (any, error) { return persistentID{pid}, nil }
	defer func() {
		// gopickle v0.2.0 indexes its stack unchecked on some malformed
		// pickles (SETITEMS of an odd number of items, LONG1 of no bytes).
		if r := recover(); r != nil {
			v, err = nil, fmt.Errorf("malformed pickle: %v", r)
		}
	}()
	return u.Load()
}

// entry is one key and value of the unpickled state_dict.
type entry struct {
	name  string
	value any
}

// entries returns the entries of the unpickled state_dict v, an
// OrderedDict or a dict with string keys, in their order.
func entries(v any) ([]entry, error) {
	var kv []types.DictEntry
	switch d := v.(type) {
	case *types.OrderedDict:
		for e := d.List.Front(); e != nil; e = e.Next() {
			oe := e.Value.(*types.OrderedDictEntry)
			kv = append(kv, types.DictEntry{Key: oe.Key, Value: oe.Value})
		}
	case *types.Dict:
		kv = *d
	default:
		return nil, fmt.Errorf("the pickle holds a %T, not a state_dict (a dict of tensors)", v)
	}
	es := make([]entry, len(kv))
	for i, e := range kv {
		name, ok := e.Key.(string)
		if !ok {
			return nil, fmt.Errorf("state_dict key %v is a %T, not a string", e.Key, e.Key)
		}
		es[i] = entry{name, e.Value}
	}
	return es, nil
}
