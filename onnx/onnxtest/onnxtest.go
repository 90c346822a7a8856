package onnxtest

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"

	"qat/qmodel"
)

// ErrNoNode is returned by Find when node is not on PATH.
var ErrNoNode = errors.New("node is not on PATH")

// ORT runs models with onnxruntime-node.
type ORT struct {
	node, script string
	// Version is the onnxruntime-node version the script loads.
	Version string
	// Path is where it loads it from.
	Path string
}

var find = sync.OnceValues(locate)

// Find returns the ORT of this machine: node from PATH,
// scripts/ort-run.js of the module that holds the working directory, and
// the onnxruntime-node the script finds ($ORT_NODE, see the script). The
// result of the first call is kept.
func Find() (*ORT, error) { return find() }

func locate() (*ORT, error) {
	node, err := exec.LookPath("node")
	if err != nil {
		return nil, ErrNoNode
	}
	dir, err := os.Getwd()
	if err != nil {
		return nil, err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return nil, errors.New("no go.mod above the working directory: cannot find scripts/ort-run.js")
		}
		dir = parent
	}
	o := &ORT{node: node, script: filepath.Join(dir, "scripts", "ort-run.js")}
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(node, o.script, "--version")
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("%s %s --version: %w: %s (onnxruntime-node is installed by the npm step of .ci/run, found through ORT_NODE)",
			node, o.script, err, strings.TrimSpace(stderr.String()))
	}
	var v struct{ Version, Path string }
	if err := json.Unmarshal(stdout.Bytes(), &v); err != nil {
		return nil, fmt.Errorf("%s --version printed %q: %w", o.script, stdout.String(), err)
	}
	o.Version, o.Path = v.Version, v.Path
	return o, nil
}

// Require returns Find's ORT for t. It skips t when node is not on PATH
// and fails it, saying how to install onnxruntime-node, when node is
// there but the script or onnxruntime-node is not.
func Require(t testing.TB) *ORT {
	t.Helper()
	o, err := Find()
	if errors.Is(err, ErrNoNode) {
		t.Skip("node is not on PATH: skipping the onnxruntime comparison (install Node.js and run the onnxruntime-node step of .ci/run)")
	}
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// Run runs model in onnxruntime, one thread and its default graph
// optimizations, on x, float32 of shape [N, C, H, W], and returns the
// model's first output, float32 in row-major order. Errors fail t.
func (o *ORT) Run(t testing.TB, model []byte, x []float32, shape [4]int) []float32 {
	t.Helper()
	return o.RunAt(t, "all", model, x, shape)
}

// RunAt is Run with graph optimization level opt: "disabled", "basic",
// "extended" or "all".
func (o *ORT) RunAt(t testing.TB, opt string, model []byte, x []float32, shape [4]int) []float32 {
	t.Helper()
	return o.RunBatches(t, opt, 0, model, x, shape)
}

// RunBatches is RunAt on consecutive batches of batch samples of x (the
// last one may be smaller), one session run each, the outputs in order;
// batch 0 runs all of x at once.
func (o *ORT) RunBatches(t testing.TB, opt string, batch int, model []byte, x []float32, shape [4]int) []float32 {
	t.Helper()
	if len(x) != shape[0]*shape[1]*shape[2]*shape[3] {
		t.Fatalf("onnxtest: %d inputs for shape %v", len(x), shape)
	}
	dir := t.TempDir()
	mf, in, out := filepath.Join(dir, "model.onnx"), filepath.Join(dir, "input.bin"), filepath.Join(dir, "output.bin")
	raw := make([]byte, 0, 4*len(x))
	for _, v := range x {
		raw = binary.LittleEndian.AppendUint32(raw, math.Float32bits(v))
	}
	if err := os.WriteFile(mf, model, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(in, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{o.script, "--opt", opt}
	if batch > 0 {
		args = append(args, "--batch", strconv.Itoa(batch))
	}
	args = append(args, mf, in)
	for _, d := range shape {
		args = append(args, strconv.Itoa(d))
	}
	cmd := exec.Command(o.node, append(args, out)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("onnxruntime: %v: %s", err, stderr.String())
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	y := make([]float32, len(b)/4)
	for i := range y {
		y[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return y
}

// Check runs the onnx package's checker with full_check (shape inference
// included) on model, with $PYTHON or /usr/bin/python3. When that Python
// cannot import onnx it logs so and returns; a model the checker rejects
// fails t.
func Check(t testing.TB, model []byte) {
	t.Helper()
	py := os.Getenv("PYTHON")
	if py == "" {
		py = "/usr/bin/python3"
	}
	if err := exec.Command(py, "-c", "import onnx").Run(); err != nil {
		t.Logf("onnx checker skipped: %s cannot import onnx (%v)", py, err)
		return
	}
	f := filepath.Join(t.TempDir(), "model.onnx")
	if err := os.WriteFile(f, model, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(py, "-c", "import onnx, sys; onnx.checker.check_model(onnx.load(sys.argv[1]), full_check=True)", f).CombinedOutput()
	if err != nil {
		t.Fatalf("onnx checker: %v: %s", err, out)
	}
}

// CPU describes this machine for test logs: the architecture and, on
// x86-64, whether it has VNNI (onnxruntime's uint8 x int8 kernels add
// pairs of products into int16 with saturation without it, which is why
// FromInt8 chooses its weight encodings; docs/onnxruntime.md).
func CPU() string {
	if runtime.GOARCH != "amd64" {
		return runtime.GOARCH
	}
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "amd64, VNNI unknown (no /proc/cpuinfo)"
	}
	for _, line := range strings.Split(string(b), "\n") {
		name, flags, ok := strings.Cut(line, ":")
		if !ok || strings.TrimSpace(name) != "flags" {
			continue
		}
		var vnni []string
		for _, f := range strings.Fields(flags) {
			if f == "avx512_vnni" || f == "avx_vnni" {
				vnni = append(vnni, f)
			}
		}
		if len(vnni) == 0 {
			return "amd64 without VNNI"
		}
		return "amd64 with " + strings.Join(vnni, ", ")
	}
	return "amd64, VNNI unknown (no flags in /proc/cpuinfo)"
}

// Pixels returns float32(p)/255 for every pixel p: the exported models'
// input, as qat's normalisation computes it before subtracting the mean.
func Pixels(p []uint8) []float32 {
	x := make([]float32, len(p))
	for i, v := range p {
		x[i] = float32(v) / 255
	}
	return x
}

// Agreement compares onnxruntime's logits with the int8 runtime's output
// codes, sample by sample.
type Agreement struct {
	N int `json:"n"`
	// ArgmaxAgreement is the fraction of samples whose first largest logit
	// and first largest code are the same class.
	ArgmaxAgreement float64 `json:"argmax_agreement"`
	// MaxLSB is the largest difference, in output codes, between a logit
	// and the code of the same output.
	MaxLSB int `json:"max_abs_diff_lsb"`
	// ExactFraction is the fraction of samples whose every logit is the
	// dequantized code, bit for bit.
	ExactFraction float64 `json:"exact_fraction"`
}

// Compare compares logits ([N, classes] float32, as DequantizeLinear
// writes them: float32(q - zp) * scale) with codes ([N, classes], the
// int8 runtime's output codes of quantization q). A logit's code is
// zp + roundHalfEven(logit / scale), which recovers q exactly from such a
// logit.
func Compare(q qmodel.Quant, classes int, codes []uint8, logits []float32) (Agreement, error) {
	if classes < 1 || len(codes) != len(logits) || len(codes)%classes != 0 {
		return Agreement{}, fmt.Errorf("onnxtest: %d codes and %d logits of %d classes", len(codes), len(logits), classes)
	}
	a := Agreement{N: len(codes) / classes}
	var agree, exact int
	for i := range a.N {
		c, l := codes[i*classes:(i+1)*classes], logits[i*classes:(i+1)*classes]
		bestC, bestL, diff, same := 0, 0, 0, true
		for j := range classes {
			want := float32(int32(c[j])-q.ZeroPoint) * q.Scale
			if math.Float32bits(l[j]) != math.Float32bits(want) {
				same = false
			}
			if v := float64(l[j]); math.IsNaN(v) || math.IsInf(v, 0) {
				diff = max(diff, 256) // farther than any two codes
			} else {
				got := int(q.ZeroPoint) + int(math.RoundToEven(v/float64(q.Scale)))
				diff = max(diff, abs(got-int(c[j])))
			}
			if c[j] > c[bestC] {
				bestC = j
			}
			if l[j] > l[bestL] {
				bestL = j
			}
		}
		if bestC == bestL {
			agree++
		}
		if same {
			exact++
		}
		a.MaxLSB = max(a.MaxLSB, diff)
	}
	if a.N > 0 {
		a.ArgmaxAgreement = float64(agree) / float64(a.N)
		a.ExactFraction = float64(exact) / float64(a.N)
	}
	return a, nil
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

// CloseLogits compares float logits [N, classes]: it returns the largest
// |got - want| relative to its sample's largest |want| (+Inf for NaN or
// a length mismatch), and the fraction of samples whose argmax agrees.
func CloseLogits(got, want []float32, classes int) (maxRel, agree float64) {
	n := len(want) / classes
	if len(got) != len(want) {
		return math.Inf(1), 0
	}
	agreed := 0
	for i := range n {
		g, w := got[i*classes:(i+1)*classes], want[i*classes:(i+1)*classes]
		scale, bg, bw := 0.0, 0, 0
		for j := range classes {
			scale = math.Max(scale, math.Abs(float64(w[j])))
			if g[j] > g[bg] {
				bg = j
			}
			if w[j] > w[bw] {
				bw = j
			}
		}
		for j := range classes {
			d := math.Abs(float64(g[j]) - float64(w[j]))
			if math.IsNaN(d) {
				d = math.Inf(1)
			}
			maxRel = math.Max(maxRel, d/scale)
		}
		if bg == bw {
			agreed++
		}
	}
	return maxRel, float64(agreed) / float64(n)
}
