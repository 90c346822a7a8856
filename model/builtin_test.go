package model

import (
	"bufio"
	"fmt"
	"os"
	"strings"
	"testing"
)

// The built-in torchvision models have torchvision's state_dict: the same
// keys in the same order with the same shapes. testdata/torchvision-state-dicts.txt
// was written from torchvision 0.14.1's resnet18(num_classes=10) and
// mobilenet_v2(num_classes=10) (its header says how).
func TestBuiltinTorchvisionStateDicts(t *testing.T) {
	f, err := os.Open("testdata/torchvision-state-dicts.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	want := map[string][]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if line := sc.Text(); !strings.HasPrefix(line, "#") {
			m, rest, _ := strings.Cut(line, " ")
			want[m] = append(want[m], rest)
		}
	}
	for _, name := range []string{"resnet18", "mobilenet_v2"} {
		g, err := Builtin(name)
		if err != nil {
			t.Fatal(err)
		}
		got := stateDict(t, g)
		if strings.Join(got, "\n") != strings.Join(want[name], "\n") {
			t.Errorf("%s: state_dict differs from torchvision's:\n%s", name, diffLines(got, want[name]))
		}
	}
}

// stateDict lists "key shape" for every param of g in order, shapes as
// in the testdata file.
func stateDict(t *testing.T, g Graph) []string {
	t.Helper()
	shapes, err := g.Shapes()
	if err != nil {
		t.Fatal(err)
	}
	src, _ := g.Sources()
	var out []string
	for i, n := range g.Nodes {
		in := g.Input
		if j := src[i][0]; j >= 0 {
			in = shapes[j]
		}
		ps := n.ParamShapes(in)
		for k, p := range n.ParamNames() {
			s := strings.Trim(strings.ReplaceAll(fmt.Sprint(ps[k]), " ", "x"), "[]")
			if s == "" {
				s = "scalar"
			}
			out = append(out, p+" "+s)
		}
	}
	return out
}

func diffLines(got, want []string) string {
	for i := range max(len(got), len(want)) {
		var g, w string
		if i < len(got) {
			g = got[i]
		}
		if i < len(want) {
			w = want[i]
		}
		if g != w {
			return fmt.Sprintf("line %d: got %q, want %q (%d and %d lines)", i, g, w, len(got), len(want))
		}
	}
	return ""
}

// resnet20 has He et al.'s 0.27M parameters (their Table 6): 3 stages of
// 3 blocks of two 3x3 convs, with option B's 1x1 shortcut convs.
func TestBuiltinResNet20(t *testing.T) {
	g, err := Builtin("resnet20")
	if err != nil {
		t.Fatal(err)
	}
	shapes, err := g.Shapes()
	if err != nil {
		t.Fatal(err)
	}
	convs, adds := 0, 0
	for _, n := range g.Nodes {
		switch {
		case n.Op == OpConv && n.Kernel == 3:
			convs++
		case n.Op == OpAdd:
			adds++
		}
	}
	if convs != 19 || adds != 9 {
		t.Errorf("%d 3x3 convs and %d adds, want 19 and 9", convs, adds)
	}
	// The last stage is 64 channels of 8x8 on a 32x32 input.
	if s := fmt.Sprint(shapes[len(shapes)-4]); s != "[64 8 8]" {
		t.Errorf("last block output %s, want [64 8 8]", s)
	}
	var weights int64
	src, _ := g.Sources()
	for i, n := range g.Nodes {
		in := g.Input
		if j := src[i][0]; j >= 0 {
			in = shapes[j]
		}
		if n.Weighted() {
			weights += product(n.ParamShapes(in)[0])
		}
	}
	// conv1 3*16*9, stage 1 6*16*16*9, stage 2 16*32*9 + 5*32*32*9 and its
	// shortcut 16*32, stage 3 32*64*9 + 5*64*64*9 and 32*64, fc 64*10.
	if want := int64(3*16*9 + 6*16*16*9 + 16*32*9 + 5*32*32*9 + 16*32 + 32*64*9 + 5*64*64*9 + 32*64 + 64*10); weights != want {
		t.Errorf("%d weights, want %d", weights, want)
	}
}

func TestResized(t *testing.T) {
	g, _ := Builtin("resnet18")
	r, err := g.Resized([]int{3, 64, 48}, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if r.Classes != 1000 || r.Nodes[len(r.Nodes)-1].Out != 1000 || g.Nodes[len(g.Nodes)-1].Out != 10 {
		t.Errorf("resized: classes %d, fc %d, original fc %d", r.Classes, r.Nodes[len(r.Nodes)-1].Out, g.Nodes[len(g.Nodes)-1].Out)
	}
	if _, err := g.Resized([]int{3, 32, 32}, 1); err == nil || !strings.Contains(err.Error(), "classes 1: want at least 2") {
		t.Errorf("1 class: %v", err)
	}
	if _, err := g.Resized([]int{3, 32}, 10); err == nil || !strings.Contains(err.Error(), "want [C, H, W]") {
		t.Errorf("2-D input: %v", err)
	}
}
