package cheader

import (
	"bytes"
	"flag"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"qat/model"
	"qat/qmodel"
)

var update = flag.Bool("update", false, "rewrite the golden headers in testdata with Write's output")

// The test models are qmodel's golden files: small.qmodel, float
// requantization, 4-bit conv and 8-bit linear weights, and
// small-fixed.qmodel, fixed requantization, 2-bit conv and 4-bit linear
// weights. Per sample:
//
//	c1      conv 1->3 k3 s1 p1, fused ReLU   [1,6,6] -> [3,6,6]
//	r6      relu6                            [3,6,6]
//	pool1   maxpool k2 s2                    [3,3,3]
//	pool2   avgpool k2 s1                    [3,2,2]
//	flat    flatten                          [12]
//	head.fc linear 12->3                     [3]

// readModel reads ../qmodel/testdata/name.qmodel.
func readModel(t *testing.T, name string) *qmodel.Model {
	t.Helper()
	m, err := qmodel.ReadFile(filepath.Join("..", "qmodel", "testdata", name+".qmodel"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestGolden pins the header's bytes: Write's output for the test models
// must equal testdata/small.h (default prefix) and small-fixed.h (prefix
// "my-net.v2").
func TestGolden(t *testing.T) {
	for _, g := range []struct{ model, prefix string }{{"small", ""}, {"small-fixed", "my-net.v2"}} {
		var b bytes.Buffer
		if err := Write(&b, readModel(t, g.model), g.prefix); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join("testdata", g.model+".h")
		if *update {
			if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b.Bytes(), want) {
			t.Errorf("Write's output differs from %s: the header changed (if on purpose, update docs/int8-model.md and run go test -update)", path)
		}
	}
}

func TestWriteText(t *testing.T) {
	var b bytes.Buffer
	if err := Write(&b, readModel(t, "small"), ""); err != nil {
		t.Fatal(err)
	}
	h := b.String()
	for _, want := range []string{
		"#ifndef QAT_MODEL_H\n#define QAT_MODEL_H\n",
		"#include <stdint.h>\n",
		"format qat-int8/2",
		" *   0 conv c1: [1,6,6] -> [3,6,6], kernel 3 stride 1 padding 1, 4-bit weights,\n",
		" *   5 linear head.fc: [12] -> [3], 8-bit weights,\n",
		"y = (float)(acc + bias[o]) * multiplier[o]",
		"#define QAT_REQUANT_FLOAT 1\n",
		"#define QAT_INPUT_SCALE 0.012728f\n",
		"#define QAT_C1_KERNEL 3\n",
		"#define QAT_HEAD_FC_OUT_ZERO_POINT 120\n",
		"static const uint8_t qat_c1_weight[14] = {",
		"static const int8_t qat_head_fc_weight[36] = {",
		"static const float qat_head_fc_multiplier[3] = {",
		"#endif /* QAT_MODEL_H */\n",
	} {
		if !strings.Contains(h, want) {
			t.Errorf("header lacks %q", want)
		}
	}
	if strings.Contains(h, "fixed_multiplier") {
		t.Error("a float model's header mentions fixed_multiplier")
	}

	b.Reset()
	if err := Write(&b, readModel(t, "small-fixed"), "my-net.v2"); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"#define MY_NET_V2_REQUANT_FIXED 1\n", "static const int32_t my_net_v2_c1_shift[3] = {", "SaturatingRoundingDoublingHighMul"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("fixed header lacks %q", want)
		}
	}
}

func TestWriteErrors(t *testing.T) {
	clash := readModel(t, "small")
	clash.Ops[1].Name = "head_fc" // and op 5 is head.fc
	invalid := readModel(t, "small")
	invalid.Ops[0].Stride = 0
	for _, c := range []struct {
		m      *qmodel.Model
		prefix string
		want   string
	}{
		{readModel(t, "small"), "2net", `prefix "2net": must not start with a digit`},
		{clash, "", "identifier QAT_HEAD_FC_CLAMP_MIN is generated twice"},
		{invalid, "", `write C header: op 0 (conv "c1"): stride 0`},
		{readModel(t, "dag"), "", `needs format "qat-int8/3"`},
	} {
		var b bytes.Buffer
		err := Write(&b, c.m, c.prefix)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("error %v, want %q", err, c.want)
		}
		if b.Len() > 0 {
			t.Errorf("%d bytes written despite the error", b.Len())
		}
	}
}

func TestCFloat(t *testing.T) {
	for x, want := range map[float32]string{
		3: "3.0f", 0.1: "0.1f", -2.5: "-2.5f", 1e-40: "1e-40f", 3e38: "3e+38f", 16777216: "1.6777216e+07f",
	} {
		if got := cFloat(x); got != want {
			t.Errorf("cFloat(%v) = %s, want %s", x, got, want)
		}
	}
	if got, want := cString("a\"b\\?é\n"), `"a\042b\134\077\303\251\012"`; got != want {
		t.Errorf("cString = %s, want %s", got, want)
	}
}

// cCheck is one value the C test program prints: a line "label value".
type cCheck struct {
	label, stmt, want string
}

// opMacros lists, per op type, the integer fields the header defines as
// macros, in order (docs/int8-model.md, section 7).
var opMacros = map[model.OpType][]string{
	model.OpConv:    {"in", "out", "kernel", "stride", "padding", "weight_bits", "clamp_min", "clamp_max"},
	model.OpLinear:  {"in", "out", "weight_bits", "clamp_min", "clamp_max"},
	model.OpMaxPool: {"kernel", "stride"},
	model.OpAvgPool: {"kernel", "stride"},
	model.OpFlatten: nil,
	model.OpReLU:    {"clamp_min", "clamp_max"},
	model.OpReLU6:   {"clamp_min", "clamp_max"},
}

// cChecks lists the values of m's header, named with macro prefix P and
// array prefix p, and what the program must print for them, computed from
// m (not from the header).
func cChecks(m *qmodel.Model, P, p string) []cCheck {
	var cs []cCheck
	integer := func(expr string, v int64) {
		cs = append(cs, cCheck{expr, fmt.Sprintf("printf(\"%s %%ld\\n\", (long)(%s));", expr, expr), fmt.Sprintf("%s %d", expr, v)})
	}
	float := func(expr string, v float32) {
		cs = append(cs, cCheck{expr, fmt.Sprintf("pf(%q, %s);", expr, expr), fmt.Sprintf("%s %08x", expr, math.Float32bits(v))})
	}
	str := func(expr, v string) {
		cs = append(cs, cCheck{expr, fmt.Sprintf("printf(\"%s [%%s]\\n\", %s);", expr, expr), fmt.Sprintf("%s [%s]", expr, v)})
	}
	str(P+"FORMAT", qmodel.Format)
	str(P+"NAME", m.Name)
	if m.Requant == qmodel.RequantFloat {
		integer(P+"REQUANT_FLOAT", 1)
	} else {
		integer(P+"REQUANT_FIXED", 1)
	}
	integer(P+"INPUT_C", int64(m.Input[0]))
	integer(P+"INPUT_H", int64(m.Input[1]))
	integer(P+"INPUT_W", int64(m.Input[2]))
	integer(P+"INPUT_SIZE", int64(m.Input[0]*m.Input[1]*m.Input[2]))
	integer(P+"CLASSES", int64(m.Classes))
	integer(P+"NUM_OPS", int64(len(m.Ops)))
	integer(P+"MAX_ACTIVATION_SIZE", 108) // c1's [3,6,6]
	float(P+"NORM_MEAN", m.Norm.Mean)
	float(P+"NORM_STD", m.Norm.Std)
	float(P+"INPUT_SCALE", m.InputQuant.Scale)
	integer(P+"INPUT_ZERO_POINT", int64(m.InputQuant.ZeroPoint))
	integer(P+"INPUT_QMIN", int64(m.InputQuant.QMin))
	integer(P+"INPUT_QMAX", int64(m.InputQuant.QMax))
	shapes, _ := m.Shapes()
	for i, op := range m.Ops {
		N := P + strings.ToUpper(strings.ReplaceAll(op.Name, ".", "_")) + "_"
		n := p + strings.ToLower(strings.ReplaceAll(op.Name, ".", "_")) + "_"
		scalars := map[string]int64{"in": int64(op.In), "out": int64(op.Out), "kernel": int64(op.Kernel), "stride": int64(op.Stride),
			"padding": int64(op.Padding), "weight_bits": int64(op.WeightBits), "clamp_min": int64(op.ClampMin), "clamp_max": int64(op.ClampMax)}
		for _, f := range opMacros[op.Type] {
			integer(N+strings.ToUpper(f), scalars[f])
		}
		float(N+"OUT_SCALE", op.Output.Scale)
		integer(N+"OUT_ZERO_POINT", int64(op.Output.ZeroPoint))
		integer(N+"OUT_QMIN", int64(op.Output.QMin))
		integer(N+"OUT_QMAX", int64(op.Output.QMax))
		s := shapes[i]
		if len(s) == 3 {
			integer(N+"OUT_C", int64(s[0]))
			integer(N+"OUT_H", int64(s[1]))
			integer(N+"OUT_W", int64(s[2]))
		}
		integer(N+"OUT_SIZE", int64(size(s)))
		if op.Type != model.OpConv && op.Type != model.OpLinear {
			continue
		}
		integer(N+"WEIGHT_COUNT", int64(len(op.Weight)))
		weights := make([]int64, len(op.Weight))
		for j, w := range op.Weight {
			weights[j] = int64(w)
		}
		if op.WeightBits != 8 {
			weights = weights[:0]
			for _, b := range qmodel.PackWeights(op.Weight, op.WeightBits) {
				weights = append(weights, int64(b))
			}
		}
		ints := func(name string, v []int64) {
			integer(fmt.Sprintf("sizeof %s / sizeof %s[0]", n+name, n+name), int64(len(v)))
			for j, x := range v {
				integer(fmt.Sprintf("%s%s[%d]", n, name, j), x)
			}
		}
		floats := func(name string, v []float32) {
			integer(fmt.Sprintf("sizeof %s / sizeof %s[0]", n+name, n+name), int64(len(v)))
			for j, x := range v {
				float(fmt.Sprintf("%s%s[%d]", n, name, j), x)
			}
		}
		int32s := func(name string, v []int32) {
			w := make([]int64, len(v))
			for j, x := range v {
				w[j] = int64(x)
			}
			ints(name, w)
		}
		ints("weight", weights)
		floats("weight_scale", op.WeightScale)
		int32s("bias", op.Bias)
		if m.Requant == qmodel.RequantFloat {
			floats("multiplier", op.Multiplier)
		} else {
			int32s("fixed_multiplier", op.FixedMultiplier)
			int32s("shift", op.Shift)
		}
	}
	return cs
}

// TestWriteC compiles generated headers with gcc -std=c99 -Wall -Wextra
// -pedantic -Werror, alone and in a program that prints every macro and
// array element, and compares what it prints with the model. It is
// skipped when gcc is not on PATH.
func TestWriteC(t *testing.T) {
	gcc, err := exec.LookPath("gcc")
	if err != nil {
		t.Skip("gcc is not on PATH")
	}
	odd := readModel(t, "small-fixed")
	odd.Name = `net "v2" ??= */ é`
	odd.Norm.Mean = -0.5
	// w8w2 has 8-bit conv codes (small's 4-bit ones) and 2-bit linear
	// ones (small's 8-bit ones clamped).
	w8w2 := readModel(t, "small")
	w8w2.Ops[0].WeightBits = 8
	fc := &w8w2.Ops[len(w8w2.Ops)-1]
	fc.WeightBits = 2
	for i, w := range fc.Weight {
		fc.Weight[i] = min(max(w, -2), 1)
	}
	for _, c := range []struct {
		m         *qmodel.Model
		prefix, P string
	}{
		{readModel(t, "small"), "", "QAT_"},
		{w8w2, "Net8", "NET8_"},
		{odd, "my-net", "MY_NET_"},
	} {
		dir := t.TempDir()
		var h bytes.Buffer
		if err := Write(&h, c.m, c.prefix); err != nil {
			t.Fatal(err)
		}
		checks := cChecks(c.m, c.P, strings.ToLower(c.P))
		var prog, want strings.Builder
		prog.WriteString("#include <stdio.h>\n#include <string.h>\n#include \"model.h\"\n#include \"model.h\"\n\n")
		prog.WriteString("static void pf(const char *label, float f) {\n\tuint32_t u;\n\tmemcpy(&u, &f, sizeof u);\n\tprintf(\"%s %08lx\\n\", label, (unsigned long)u);\n}\n\n")
		prog.WriteString("int main(void) {\n")
		for _, ch := range checks {
			fmt.Fprintf(&prog, "\t%s\n", ch.stmt)
			fmt.Fprintf(&want, "%s\n", ch.want)
		}
		prog.WriteString("\treturn 0;\n}\n")
		files := map[string]string{"model.h": h.String(), "alone.c": "#include \"model.h\"\n", "main.c": prog.String()}
		for name, content := range files {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		flags := []string{"-std=c99", "-Wall", "-Wextra", "-pedantic", "-Werror"}
		for _, args := range [][]string{
			append(flags, "-c", "alone.c", "-o", "alone.o"),
			append(flags, "main.c", "-o", "main"),
		} {
			cmd := exec.Command(gcc, args...)
			cmd.Dir = dir
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("gcc %s: %v\n%s\nheader:\n%s", strings.Join(args, " "), err, out, h.String())
			}
		}
		cmd := exec.Command(filepath.Join(dir, "main"))
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("running the C program: %v", err)
		}
		got, wantLines := strings.Split(string(out), "\n"), strings.Split(want.String(), "\n")
		if len(got) != len(wantLines) {
			t.Fatalf("the C program printed %d lines, want %d", len(got), len(wantLines))
		}
		for i := range got {
			if got[i] != wantLines[i] {
				t.Errorf("prefix %q: C prints %q, want %q", c.prefix, got[i], wantLines[i])
			}
		}
	}
}
