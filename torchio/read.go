package torchio

import (
	"archive/zip"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"

	"github.com/nlpodyssey/gopickle/types"

	"qat/safetensors"
)

// Limits of ReadStateDict, checked before anything of their size is
// allocated. A program may raise them before it reads.
var (
	// MaxEntries bounds the entries of an archive. Its zip directory is
	// read only as far as dirEntryBytes bytes per allowed entry, so a
	// larger one is refused before its entries are allocated.
	MaxEntries = 1 << 16
	// MaxPickleBytes bounds the size of data.pkl, which takes about 140
	// bytes per tensor (43 KB for torchvision's mobilenet_v2). Unpickling
	// allocates up to some 400 times the size of a hostile pickle
	// (gopickle makes a slice at every MARK, EMPTY_DICT or EMPTY_LIST).
	MaxPickleBytes int64 = 1 << 20
	// MaxBytes bounds the tensor data of a file: the storage records read
	// from an archive, the tensors converted to float32 or int64, and a
	// whole safetensors file, each summed over the file.
	MaxBytes int64 = 2 << 30
)

// dirEntryBytes is the zip directory allowed per entry of MaxEntries
// (torch.save's take under 100 bytes), dirSlack what archive/zip reads
// besides: the end of directory records and its read buffer.
const (
	dirEntryBytes = 256
	dirSlack      = 128 << 10
)

// Tensor is one entry of a state_dict: its shape and its elements in
// row-major order, in Float (converted to float32) for a floating-point
// tensor or in Int for an int64 one; the other is nil.
type Tensor struct {
	Shape []int
	// DType is the element type in the file, as PyTorch names it:
	// "float32", "float64", "float16", "bfloat16" or "int64".
	DType string
	Float []float32
	Int   []int64
}

// StateDict maps state_dict keys to their tensors.
type StateDict map[string]Tensor

// ReadStateDict reads the state_dict of the file at path, a torch.save
// archive or a safetensors file (see the package documentation). Errors
// name the file, and the tensor where one is at fault.
func ReadStateDict(path string) (StateDict, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err // an *os.PathError, which names the file
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	sd, err := read(f, st.Size())
	if err != nil {
		return nil, fmt.Errorf("state_dict %s: %w", path, err)
	}
	return sd, nil
}

// read reads a state_dict file of size bytes from r.
func read(r io.ReaderAt, size int64) (StateDict, error) {
	head := make([]byte, 9)
	n, err := r.ReadAt(head, 0)
	if err != nil && err != io.EOF {
		return nil, err
	}
	head = head[:n]
	switch {
	case bytes.HasPrefix(head, []byte("PK\x03\x04")):
		return readArchive(r, size)
	case len(head) == 9 && head[8] == '{':
		return readSafetensors(r, size)
	case len(head) > 0 && head[0] == 0x80: // a pickle's PROTO opcode
		return nil, errors.New("torch.save's format before PyTorch 1.6 (a bare pickle) is not supported: load the file with torch and save it again")
	}
	return nil, errors.New("neither a torch.save zip archive nor a safetensors file")
}

// readSafetensors reads a safetensors file of size bytes from r.
func readSafetensors(r io.ReaderAt, size int64) (StateDict, error) {
	if size > MaxBytes {
		return nil, fmt.Errorf("safetensors file of %d bytes is above the limit of %d (torchio.MaxBytes)", size, MaxBytes)
	}
	buf := make([]byte, size)
	if _, err := io.ReadFull(io.NewSectionReader(r, 0, size), buf); err != nil {
		return nil, err
	}
	f, err := safetensors.Parse(buf)
	if err != nil {
		return nil, err
	}
	sd := make(StateDict, len(f.Tensors))
	budget := MaxBytes
	for _, name := range f.Names() {
		t := f.Tensors[name]
		d, ok := safetensorsTypes[t.DType]
		if !ok {
			d = dtype{name: string(t.DType), size: t.DType.Size()}
		}
		if sd[name], err = decode(name, d, t.Shape, t.Data, &budget); err != nil {
			return nil, err
		}
	}
	return sd, nil
}

// budgetReaderAt reads from r until left bytes have been read; a read
// beyond fails and sets over.
type budgetReaderAt struct {
	r    io.ReaderAt
	left int64
	over bool
}

var errBudget = errors.New("read budget exhausted")

func (b *budgetReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if int64(len(p)) > b.left {
		b.over = true
		return 0, errBudget
	}
	b.left -= int64(len(p))
	return b.r.ReadAt(p, off)
}

// archive is an open torch.save archive.
type archive struct {
	prefix   string
	files    map[string]*zip.File
	storages map[string]*storage // by key, as the pickle references them
	// storageBytes sums the sizes of the storages.
	storageBytes int64
}

// storage is one storage record of an archive.
type storage struct {
	key   string
	dtype dtype
	elems int
	file  *zip.File
	data  []byte // nil until read
}

// readArchive reads a torch.save archive of size bytes from r.
func readArchive(r io.ReaderAt, size int64) (StateDict, error) {
	dir := &budgetReaderAt{r: r, left: dirSlack + int64(MaxEntries)*dirEntryBytes}
	zr, err := zip.NewReader(dir, size)
	if dir.over || err == nil && len(zr.File) > MaxEntries {
		return nil, fmt.Errorf("the zip archive holds more than %d entries (torchio.MaxEntries)", MaxEntries)
	}
	if err != nil {
		return nil, err
	}
	dir.left = math.MaxInt64 // the entries' data is bounded by the other limits
	a, err := openArchive(zr.File)
	if err != nil {
		return nil, err
	}
	pkl, err := readFile(a.files[a.prefix+"/data.pkl"], MaxPickleBytes, "torchio.MaxPickleBytes")
	if err != nil {
		return nil, err
	}
	v, err := unpickle(pkl)
	if err != nil {
		return nil, fmt.Errorf("%s/data.pkl: %w", a.prefix, err)
	}
	return a.stateDict(v)
}

// openArchive indexes the entries of a torch.save archive and checks its
// version and byte order.
func openArchive(files []*zip.File) (*archive, error) {
	a := &archive{files: make(map[string]*zip.File, len(files)), storages: map[string]*storage{}}
	found := false
	for _, f := range files {
		if _, dup := a.files[f.Name]; dup {
			return nil, fmt.Errorf("the archive holds %s twice", f.Name)
		}
		a.files[f.Name] = f
		if p, ok := strings.CutSuffix(f.Name, "/data.pkl"); ok && !strings.Contains(p, "/") {
			if found {
				return nil, fmt.Errorf("the archive holds both %s/data.pkl and %s/data.pkl", a.prefix, p)
			}
			a.prefix, found = p, true
		}
	}
	if !found {
		return nil, errors.New("the archive holds no PREFIX/data.pkl: not a torch.save file")
	}
	v, err := a.small("version", true)
	if err != nil {
		return nil, err
	}
	if n, err := strconv.Atoi(v); err != nil || n < 1 {
		return nil, fmt.Errorf("%s/version %q is not a format version", a.prefix, v)
	}
	if v, err := a.small("byteorder", false); err != nil {
		return nil, err
	} else if v != "" && v != "little" {
		return nil, fmt.Errorf("%s/byteorder is %q: only little-endian archives are supported", a.prefix, v)
	}
	return a, nil
}

// small returns the trimmed text of the archive's short record name, ""
// if it is absent and not required.
func (a *archive) small(name string, required bool) (string, error) {
	f := a.files[a.prefix+"/"+name]
	if f == nil {
		if required {
			return "", fmt.Errorf("the archive holds no %s/%s: not a torch.save file", a.prefix, name)
		}
		return "", nil
	}
	b, err := readFile(f, 64, "that of a short record")
	return strings.TrimSpace(string(b)), err
}

// readFile reads entry f of at most limit bytes (the limit's name is
// limitName) and checks its CRC-32.
func readFile(f *zip.File, limit int64, limitName string) ([]byte, error) {
	if f.UncompressedSize64 > uint64(limit) {
		return nil, fmt.Errorf("%s is %d bytes, above the limit of %d (%s)", f.Name, f.UncompressedSize64, limit, limitName)
	}
	rc, err := f.Open()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", f.Name, err)
	}
	defer rc.Close()
	b := make([]byte, f.UncompressedSize64)
	if _, err := io.ReadFull(rc, b); err != nil {
		return nil, fmt.Errorf("%s: %w", f.Name, err)
	}
	// Reading to the end makes archive/zip check the size and CRC-32.
	if _, err := io.Copy(io.Discard, rc); err != nil {
		return nil, fmt.Errorf("%s: %w", f.Name, err)
	}
	return b, nil
}

// stateDict decodes the unpickled state_dict v: it checks every tensor
// against its storage, then reads the storages and converts the tensors.
func (a *archive) stateDict(v any) (StateDict, error) {
	es, err := entries(v)
	if err != nil {
		return nil, fmt.Errorf("%s/data.pkl: %w", a.prefix, err)
	}
	views := make([]view, len(es))
	for i, e := range es {
		if views[i], err = a.view(e.value); err != nil {
			return nil, fmt.Errorf("tensor %q: %w", e.name, err)
		}
	}
	sd := make(StateDict, len(es))
	budget := MaxBytes
	for i, e := range es {
		if _, ok := sd[e.name]; ok {
			return nil, fmt.Errorf("%s/data.pkl holds tensor %q twice", a.prefix, e.name)
		}
		v := views[i]
		// Unsupported dtypes fail before their storage is read.
		if !v.storage.dtype.supported() {
			return nil, unsupported(e.name, v.storage.dtype.name)
		}
		s := v.storage
		if s.data == nil {
			if s.data, err = readFile(s.file, MaxBytes, "torchio.MaxBytes"); err != nil {
				return nil, err
			}
		}
		size := s.dtype.size
		if sd[e.name], err = decode(e.name, s.dtype, v.shape, s.data[v.offset*size:(v.offset+v.elems)*size], &budget); err != nil {
			return nil, err
		}
	}
	return sd, nil
}

// view is a tensor of an archive: elems elements of shape from offset
// on in storage, which holds them.
type view struct {
	storage *storage
	offset  int
	shape   []int
	elems   int
}

// view decodes the value of a state_dict entry: a _rebuild_tensor_v2
// call, maybe wrapped in _rebuild_parameter, whose storage is a record of
// a and which it must fit contiguously.
func (a *archive) view(v any) (view, error) {
	r, ok := v.(*rebuilt)
	if !ok {
		switch v.(type) {
		case *types.OrderedDict, *types.Dict:
			return view{}, errors.New("a dict, not a tensor: the file holds more than a state_dict (save model.state_dict() alone)")
		}
		return view{}, fmt.Errorf("a value of type %T, not a tensor", v)
	}
	if r.fn == fnRebuildParameter {
		// _rebuild_parameter(data, requires_grad, backward_hooks)
		inner, ok := r.arg(0).(*rebuilt)
		if len(r.args) != 3 || !ok || inner.fn != fnRebuildTensor {
			return view{}, fmt.Errorf("%s takes (tensor, requires_grad, hooks), not %d arguments starting with a %T", fnRebuildParameter, len(r.args), r.arg(0))
		}
		r = inner
	}
	// _rebuild_tensor_v2(storage, storage_offset, size, stride,
	// requires_grad, backward_hooks[, metadata]); requires_grad and the
	// hooks do not matter here, and no metadata is allowed.
	if len(r.args) != 6 && (len(r.args) != 7 || r.args[6] != nil) {
		return view{}, fmt.Errorf("%s takes 6 arguments, not %d", fnRebuildTensor, len(r.args))
	}
	pid, ok := r.args[0].(persistentID)
	if !ok {
		return view{}, fmt.Errorf("%s argument storage is a %T, not a storage", fnRebuildTensor, r.args[0])
	}
	s, err := a.storage(pid)
	if err != nil {
		return view{}, err
	}
	offset, ok := r.args[1].(int)
	shape, okShape := ints(r.args[2])
	stride, okStride := ints(r.args[3])
	if !ok || !okShape || !okStride || len(shape) != len(stride) {
		return view{}, fmt.Errorf("%s arguments offset %v, size %v, stride %v: want an int and two tuples of ints of one length", fnRebuildTensor, r.args[1], r.args[2], r.args[3])
	}
	vw := view{storage: s, offset: offset, shape: shape, elems: 1}
	for _, d := range shape {
		if d < 0 {
			return view{}, fmt.Errorf("size %v has a negative dimension", shape)
		}
		if d != 0 && vw.elems > math.MaxInt/d {
			return view{}, fmt.Errorf("size %v holds too many elements", shape)
		}
		vw.elems *= d
	}
	if offset < 0 || vw.elems > s.elems || offset > s.elems-vw.elems {
		return view{}, fmt.Errorf("elements %d to %d (offset %d, size %v) lie outside storage %s of %d elements", offset, offset+vw.elems, offset, shape, s.key, s.elems)
	}
	want := 1
	for i := len(shape) - 1; i >= 0 && vw.elems > 0; i-- {
		if shape[i] != 1 && stride[i] != want {
			return view{}, fmt.Errorf("size %v with strides %v is not contiguous (row-major): save it .contiguous()", shape, stride)
		}
		want *= shape[i]
	}
	return vw, nil
}

// storage resolves the persistent id ("storage", class, key, location,
// elements) of a storage, once per key; the location does not matter.
func (a *archive) storage(pid persistentID) (*storage, error) {
	t, _ := pid.v.(*types.Tuple)
	var (
		cls           storageClass
		key           string
		elems         int
		okC, okK, okN bool
	)
	if t != nil && t.Len() == 5 {
		cls, okC = t.Get(1).(storageClass)
		key, okK = t.Get(2).(string)
		_, okL := t.Get(3).(string)
		elems, okN = t.Get(4).(int)
		okN = okN && okL && t.Get(0) == "storage" && elems >= 0
	}
	if !okC || !okK || !okN {
		return nil, fmt.Errorf("persistent id %v is not (\"storage\", class, key, location, elements)", pid.v)
	}
	d := dtype(cls)
	if s, ok := a.storages[key]; ok {
		if s.dtype != d || s.elems != elems {
			return nil, fmt.Errorf("storage %s is %d %s elements here and %d %s elements elsewhere", key, elems, d.name, s.elems, s.dtype.name)
		}
		return s, nil
	}
	name := a.prefix + "/data/" + key
	f := a.files[name]
	if f == nil {
		return nil, fmt.Errorf("storage %s: the archive holds no %s", key, name)
	}
	if int64(elems) > MaxBytes/int64(d.size) {
		return nil, fmt.Errorf("storage %s of %d %s elements is above the limit of %d bytes (torchio.MaxBytes)", key, elems, d.name, MaxBytes)
	}
	n := int64(elems) * int64(d.size)
	if f.UncompressedSize64 != uint64(n) {
		return nil, fmt.Errorf("storage %s of %d %s elements needs %d bytes, but %s holds %d", key, elems, d.name, n, name, f.UncompressedSize64)
	}
	if a.storageBytes += n; a.storageBytes > MaxBytes {
		return nil, fmt.Errorf("the storages reach %d bytes, above the limit of %d (torchio.MaxBytes)", a.storageBytes, MaxBytes)
	}
	s := &storage{key: key, dtype: d, elems: elems, file: f}
	a.storages[key] = s
	return s, nil
}

// ints returns the elements of v, a tuple of ints.
func ints(v any) ([]int, bool) {
	t, ok := v.(*types.Tuple)
	if !ok {
		return nil, false
	}
	out := make([]int, t.Len())
	for i := range out {
		if out[i], ok = t.Get(i).(int); !ok {
			return nil, false
		}
	}
	return out, true
}
