package layers

import (
	"errors"
	"fmt"
	"hash"
	"strings"
	"testing"

	"github.com/chewxy/hm"
	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"qat/internal/graphval"
)

// errBadInput is the cause a failing op returns in TestUnwrapVM.
var errBadInput = errors.New("bad input values")

// failOp is a unary op whose Do fails with errBadInput.
type failOp struct{}

func (failOp) Arity() int    { return 1 }
func (failOp) Type() hm.Type { return hm.NewFnType(graphval.TypeAny, graphval.TypeAny) }
func (failOp) InferShape(ds ...gorgonia.DimSizer) (tensor.Shape, error) {
	return graphval.ShapeArg(ds, 0)
}
func (failOp) ReturnsPtr() bool                             { return false }
func (failOp) CallsExtern() bool                            { return false }
func (failOp) OverwritesInput() int                         { return -1 }
func (failOp) WriteHash(h hash.Hash)                        { fmt.Fprint(h, "failOp") }
func (failOp) Hashcode() uint32                             { return 7 }
func (failOp) String() string                               { return "FailOp(c7)" }
func (failOp) Do(...gorgonia.Value) (gorgonia.Value, error) { return nil, errBadInput }

// A failure inside the VM reaches the caller as the op's own error, named
// by the op, without the VM's framing, and errors.Is finds the cause.
func TestUnwrapVM(t *testing.T) {
	g := gorgonia.NewGraph()
	x := gorgonia.NewVector(g, tensor.Float32, gorgonia.WithShape(3), gorgonia.WithName("x"),
		gorgonia.WithValue(tensor.New(tensor.WithShape(3), tensor.WithBacking([]float32{1, 2, 3}))))
	y, err := gorgonia.ApplyOp(failOp{}, x)
	if err != nil {
		t.Fatal(err)
	}
	vm := gorgonia.NewTapeMachine(g.SubgraphRoots(y))
	defer vm.Close()
	raw := vm.RunAll()
	if raw == nil {
		t.Fatal("the failing op did not fail")
	}
	err = unwrapVM(raw)
	if !errors.Is(err, errBadInput) {
		t.Errorf("unwrapVM(%q) = %q: does not wrap the cause", raw, err)
	}
	if got, want := err.Error(), "FailOp(c7): bad input values"; got != want {
		t.Errorf("unwrapVM(%q) = %q, want %q", raw, got, want)
	}
	if !strings.Contains(raw.Error(), "Failed to") {
		t.Logf("the VM's own error no longer has its framing: %q", raw)
	}
	if err := unwrapVM(errBadInput); err != errBadInput {
		t.Errorf("unwrapVM of an error from outside the VM: %v", err)
	}
}
