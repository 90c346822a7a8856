package main

import (
	"bytes"
	"crypto/sha256"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"qat/data"
)

// hostileCase is one corrupt or nonsensical input given to one command:
// the command must fail (exit 1, or 2 for a usage error), say why naming
// the file or flag (want), and leave every file it was given as it was.
// Where a damaged byte may lie outside what the format's reader uses (a
// zip archive's timestamps, say), same names the output the undamaged
// input gives: the command may then succeed, if it writes exactly that.
type hostileCase struct {
	name string
	args []string
	want string
	same []byte
}

// TestHostileInputs runs a corpus of hostile inputs that the test makes
// itself from a few good files (a float and a quantized checkpoint, an
// int8 model, a model spec, a quant config, an idx data directory):
// truncations and bit flips at spread offsets, broken JSON, bad flag
// values. It logs the counts: tried, clear (exit != 0 with an error naming
// the input) and lost (an input file changed).
func TestHostileInputs(t *testing.T) {
	dir := t.TempDir()
	good := func(args ...string) {
		t.Helper()
		if code, _, errs := qat(t, args...); code != 0 {
			t.Fatalf("%v: exit %d: %s", args, code, errs)
		}
	}
	float := filepath.Join(dir, "float.safetensors")
	q8 := filepath.Join(dir, "q8.safetensors")
	model := filepath.Join(dir, "q8.qmodel")
	good("train", "--model", "mlp", "--limit", "256", "--epochs", "1", "--out", float, "--quiet")
	good("calibrate", "--from", float, "--batches", "1", "--out", q8)
	good("export", "--checkpoint", q8, "--out", model)
	idxDir := writeIDXDir(t, filepath.Join(dir, "idx"))

	var cases []hostileCase
	// corrupt adds the damaged variants of src, each given to a command by
	// use; same, if not nil, is the output of the undamaged src.
	corrupt := func(kind, src string, same []byte, use func(path string) []string) {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		n := len(b)
		variants := map[string][]byte{"empty": {}}
		for _, at := range []int{1, 7, 8, 9, 64, n / 3, n / 2, n - 1} {
			variants["truncated at "+strconv.Itoa(at)] = b[:at]
		}
		for i := 1; i <= 24; i++ {
			at := i * (n - 1) / 24
			c := bytes.Clone(b)
			c[at] ^= 1 << (i % 8)
			variants["bit "+strconv.Itoa(i%8)+" of byte "+strconv.Itoa(at)+" flipped"] = c
		}
		variants["trailing byte"] = append(bytes.Clone(b), 0)
		for name, v := range variants {
			p := filepath.Join(dir, kind+"-"+strconv.Itoa(len(cases))+filepath.Ext(src))
			if err := os.WriteFile(p, v, 0o644); err != nil {
				t.Fatal(err)
			}
			cases = append(cases, hostileCase{name: kind + " " + name, args: use(p), want: p, same: same})
		}
	}
	out := filepath.Join(dir, "out.safetensors")
	corrupt("checkpoint", q8, nil, func(p string) []string { return []string{"eval", "--model", p} })
	corrupt("checkpoint", float, nil, func(p string) []string { return []string{"calibrate", "--from", p, "--batches", "1", "--out", out} })
	corrupt("checkpoint", q8, nil, func(p string) []string {
		return []string{"export", "--checkpoint", p, "--out", filepath.Join(dir, "x.qmodel")}
	})
	corrupt("model", model, nil, func(p string) []string { return []string{"eval", "--model", p, "--data", "embedded"} })
	corrupt("model", model, nil, func(p string) []string { return []string{"compare", "--checkpoint", q8, "--model", p} })
	// PyTorch state_dicts (torchio's fixtures, written by
	// scripts/torch-fixtures.py): a .pt archive, and one whose pickle
	// names os.system.
	tinySpec, err := filepath.Abs("../../torchio/testdata/tiny.json")
	if err != nil {
		t.Fatal(err)
	}
	good("import", "--torch", "../../torchio/testdata/tiny.pt", "--model", tinySpec, "--out", out)
	imported, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(out)
	corrupt("state_dict", "../../torchio/testdata/tiny.pt", imported, func(p string) []string {
		return []string{"import", "--torch", p, "--model", tinySpec, "--out", out}
	})
	evil := filepath.Join(dir, "evil.pt")
	copyFile(t, "../../torchio/testdata/evil.pt", evil)
	cases = append(cases, hostileCase{name: "state_dict with a global", args: []string{"import", "--torch", evil, "--model", tinySpec, "--out", out}, want: "not allowed"})

	text := func(kind, content string, use func(path string) []string, want string) {
		p := filepath.Join(dir, kind+"-"+strconv.Itoa(len(cases))+".json")
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		cases = append(cases, hostileCase{name: kind + " " + content, args: use(p), want: want})
	}
	spec := func(p string) []string {
		return []string{"train", "--model", p, "--limit", "64", "--out", out, "--quiet"}
	}
	ok := `{"name":"x","input":[1,28,28],"classes":10,"layers":[{"type":"flatten"},{"type":"linear","name":"a","out":10}]}`
	for _, s := range []struct{ content, want string }{
		{ok + " []", "data after the JSON value"},
		{strings.Replace(ok, `"name":"x"`, `"name":"x","name":"y"`, 1), `duplicate field "name"`},
		{strings.Replace(ok, `"out":10`, `"out":null`, 1), "is null"},
		{strings.Replace(ok, `"out":10`, `"out":1e12`, 1), "layers"},
		{strings.Replace(ok, `"out":10`, `"out":-3`, 1), "negative"},
		{strings.Replace(ok, `"out":10`, `"out":4294967296,"name2":1`, 1), "unknown field"},
		{strings.Replace(ok, `[1,28,28]`, `[1,100000,100000]`, 1), "above the limit"},
		{`{"name":"x","input":[1,1024,1024],"classes":10,"layers":[{"type":"flatten"},{"type":"linear","name":"a","out":1048576},{"type":"linear","name":"b","out":10}]}`, "above the limit"},
		{strings.Replace(ok, `"type":"flatten"`, `"type":"Flatten"`, 1), "unknown layer type"},
		{`{`, "unexpected end"},
		{``, "unexpected end"},
	} {
		text("spec", s.content, spec, s.want)
	}
	qconf := func(p string) []string {
		return []string{"calibrate", "--from", float, "--quant-config", p, "--batches", "1", "--out", out}
	}
	for _, s := range []struct{ content, want string }{
		{`{"act":{"observer":"bogus"}}`, "observer"},
		{`{"weight":{"bits":4,"bits":8}}`, "duplicate field"},
		{`{"weight":null}`, "is null"},
		{`{"weight":{"bits":4}} x`, "data after the JSON value"},
		{`{"weight":{"bits":1}}`, "weight"},
		{`{"weight":{"bits":9}}`, "weight"},
		{`{"act":{"symmetric":true,"affine":true}}`, "both symmetric and affine"},
		{`{"layers":{"nope":{"weight":{"bits":4}}}}`, `layer "nope"`},
		{`{"weight":{"learnable":"pact"}}`, "pact"},
		{`{"act":{"Bits":4}}`, "unknown field"},
	} {
		text("quant-config", s.content, qconf, s.want)
	}
	// idx data: every file truncated, then each with a wrong magic.
	for _, name := range []string{"train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"} {
		for _, edit := range []func([]byte) []byte{
			func(b []byte) []byte { return b[:len(b)-3] },
			func(b []byte) []byte { c := bytes.Clone(b); c[2] = 0x0D; return c },
			func(b []byte) []byte { return append(bytes.Clone(b), 1, 2, 3) },
		} {
			d := filepath.Join(dir, "idx-"+strconv.Itoa(len(cases)))
			copyDir(t, idxDir, d)
			p := filepath.Join(d, name)
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, edit(b), 0o644); err != nil {
				t.Fatal(err)
			}
			cases = append(cases, hostileCase{name: "idx " + name, args: []string{"train", "--model", "mlp", "--data", d, "--out", out, "--quiet"}, want: p})
		}
	}
	// CIFAR-10 binary data: a batch truncated, given a label past the
	// classes, emptied or missing.
	cifarDir := writeCIFARDir(t, filepath.Join(dir, "cifar"))
	spec3 := filepath.Join(dir, "spec3.json")
	if err := os.WriteFile(spec3, []byte(`{"name":"x","input":[3,32,32],"classes":10,"layers":[{"type":"flatten"},{"type":"linear","name":"a","out":10}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, edit := range []struct {
		file string
		f    func([]byte) []byte // nil: remove the file
	}{
		{"data_batch_3.bin", func(b []byte) []byte { return b[:len(b)-1] }},
		{"data_batch_1.bin", func(b []byte) []byte { c := bytes.Clone(b); c[0] = 10; return c }},
		{"test_batch.bin", func(b []byte) []byte { return nil }},
		{"data_batch_5.bin", nil},
	} {
		d := filepath.Join(dir, "cifar-"+strconv.Itoa(len(cases)))
		copyDir(t, cifarDir, d)
		p := filepath.Join(d, edit.file)
		if edit.f == nil {
			if err := os.Remove(p); err != nil {
				t.Fatal(err)
			}
		} else {
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, edit.f(b), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		cases = append(cases, hostileCase{name: "cifar10 " + edit.file, args: []string{"train", "--model", spec3, "--data", "cifar10:" + d, "--out", out, "--quiet"}, want: p})
	}
	// Flags out of range or contradicting the checkpoint.
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"threads 0", []string{"eval", "--model", q8, "--threads", "0"}, "--threads"},
		{"batch -1", []string{"eval", "--model", q8, "--batch", "-1"}, "--batch"},
		{"limit -1", []string{"eval", "--model", q8, "--limit", "-1"}, "--limit"},
		{"epochs 0", []string{"train", "--epochs", "0", "--out", out}, "--epochs"},
		{"bits W0A0", []string{"finetune", "--from", float, "--bits", "W0A0", "--out", out}, "bits"},
		{"bits W8A8x", []string{"finetune", "--from", float, "--bits", "W8A8x", "--out", out}, "bits"},
		{"learnable bogus", []string{"finetune", "--from", float, "--learnable", "bogus", "--out", out}, "--learnable"},
		{"requant bogus", []string{"export", "--checkpoint", q8, "--out", filepath.Join(dir, "y.qmodel"), "--requant", "bogus"}, "--requant"},
		{"float export --out", []string{"export", "--checkpoint", float, "--out", filepath.Join(dir, "y.qmodel")}, float},
		{"quantized --from", []string{"finetune", "--from", q8, "--out", out}, "already quantized"},
		{"max-params 0", []string{"train", "--max-params", "0", "--out", out}, "--max-params"},
		{"out = from", []string{"calibrate", "--from", float, "--out", float}, "--out"},
		{"dump = model", []string{"eval", "--model", q8, "--dump", q8}, "--dump"},
		{"resume done", []string{"train", "--resume", float, "--out", out}, "nothing to do"},
		{"resume other data", []string{"train", "--resume", float, "--epochs", "2", "--data", idxDir, "--out", out}, "--data"},
		{"missing file", []string{"eval", "--model", filepath.Join(dir, "none.safetensors")}, "none.safetensors"},
		{"directory as model", []string{"eval", "--model", dir}, dir},
		{"unknown data", []string{"train", "--data", "cifar99", "--out", out}, "cifar99"},
		{"augment-pad -1", []string{"train", "--model", spec3, "--data", "cifar10:" + cifarDir, "--augment-pad", "-1", "--out", out, "--quiet"}, "pad"},
		{"augment-pad 33", []string{"train", "--model", spec3, "--data", "cifar10:" + cifarDir, "--augment-pad", "33", "--out", out, "--quiet"}, "pad"},
		{"max-data-bytes 0", []string{"train", "--max-data-bytes", "0", "--out", out}, "--max-data-bytes"},
		{"max-data-bytes small", []string{"train", "--model", spec3, "--data", "cifar10:" + cifarDir, "--max-data-bytes", "4096", "--out", out, "--quiet"}, "--max-data-bytes raises it"},
		{"3-channel data, 1-channel model", []string{"train", "--model", "mlp", "--data", "cifar10:" + cifarDir, "--out", out, "--quiet"}, "3x32x32 images"},
	} {
		cases = append(cases, hostileCase{name: c.name, args: c.args, want: c.want})
	}

	// Run them all; every file in dir must survive unchanged.
	before := hashTree(t, dir)
	clear, harmless, lost := 0, 0, 0
	for _, c := range cases {
		code, _, errs := qat(t, c.args...)
		switch {
		case code == 0 && c.same != nil:
			if got, err := os.ReadFile(out); err != nil || !bytes.Equal(got, c.same) {
				t.Errorf("%s: %v: accepted (exit 0) with an output that differs from the undamaged input's", c.name, c.args)
			} else {
				harmless++
			}
		case code == 0:
			t.Errorf("%s: %v: accepted (exit 0)", c.name, c.args)
		case !strings.Contains(errs, c.want):
			t.Errorf("%s: %v: exit %d, %q does not name %q", c.name, c.args, code, strings.TrimSpace(errs), c.want)
		default:
			clear++
		}
		os.Remove(out)
	}
	after := hashTree(t, dir)
	for p, h := range before {
		if after[p] != h {
			lost++
			t.Errorf("%s changed or vanished", p)
		}
	}
	for p := range after {
		if _, ok := before[p]; !ok {
			t.Errorf("%s was left behind", p)
		}
	}
	t.Logf("hostile corpus: %d tried, %d clear errors, %d damaged where the reader does not look (same output as undamaged), %d files lost", len(cases), clear, harmless, lost)
}

// writeIDXDir writes a small valid MNIST-format directory (64 training
// and 32 test images of the embedded sample) into dir.
func writeIDXDir(t *testing.T, dir string) string {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for split, n := range map[string]int{"train": 64, "t10k": 32} {
		name := "train"
		if split == "t10k" {
			name = "test"
		}
		ds, err := data.LoadEmbedded(name)
		if err != nil {
			t.Fatal(err)
		}
		ds = ds.Limit(n)
		for file, a := range map[string]data.IDX{
			split + "-images-idx3-ubyte": {Dims: []int{n, ds.H, ds.W}, Data: ds.Images[:n*ds.H*ds.W]},
			split + "-labels-idx1-ubyte": {Dims: []int{n}, Data: ds.Labels[:n]},
		} {
			var buf bytes.Buffer
			if err := data.WriteIDX(&buf, a); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, file), buf.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	return dir
}

// writeCIFARDir writes a small valid CIFAR-10 binary directory into dir:
// two records in each training batch and in the test batch, with
// pixels and labels from a fixed pattern.
func writeCIFARDir(t *testing.T, dir string) string {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	names := []string{"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin", "test_batch.bin"}
	for f, name := range names {
		var b []byte
		for r := range 2 {
			b = append(b, byte((f+r)%10))
			for i := range 3 * 32 * 32 {
				b = append(b, byte(i*7+f*13+r))
			}
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	if err := os.CopyFS(dst, os.DirFS(src)); err != nil {
		t.Fatal(err)
	}
}

// hashTree returns the SHA-256 of every file under dir.
func hashTree(t *testing.T, dir string) map[string][32]byte {
	t.Helper()
	h := map[string][32]byte{}
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		h[p] = sha256.Sum256(b)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return h
}
