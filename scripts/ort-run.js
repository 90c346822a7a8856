#!/usr/bin/env node
// ort-run.js: runs an ONNX model exported by qat (onnx.FromInt8, onnx.FromFloat,
// `qat export --onnx`) in onnxruntime-node on float32 input, on one thread.
//
// usage: node scripts/ort-run.js [--opt LEVEL] [--optimized FILE] [--repeat R | --batch B] MODEL.onnx INPUT.bin N C H W OUT.bin
//        node scripts/ort-run.js --version
//
//   INPUT.bin  N*C*H*W float32 values, little-endian, NCHW: the graph input "input"
//              (pixels scaled to [0, 1]: float32(p) / 255).
//   OUT.bin    written: the graph's first output ("logits"), float32 little-endian,
//              row-major; a JSON line on stdout gives its name and shape.
//   --opt      graph optimization level: disabled, basic, extended or all (the default,
//              onnxruntime's own default).
//   --optimized  writes the graph onnxruntime runs after its optimizations to FILE
//              (ONNX; fused nodes appear as onnxruntime's own operators, e.g.
//              com.microsoft's QLinearAdd), to see what it fused.
//   --repeat   runs the model R more times after the first and adds "seconds", the
//              fastest run, to the JSON line (for timing; the output is the first run's).
//   --batch    runs the N samples in consecutive batches of B (the last one may be
//              smaller), one session run each, and writes their outputs in order.
//   --version  prints {"version": ..., "path": ...} of the onnxruntime-node it loads.
//
// onnxruntime-node is loaded from $ORT_NODE when it is set: a folder holding
// node_modules/onnxruntime-node (as `npm install --prefix "$ORT_NODE"` makes) or the
// package folder itself. Otherwise from ${XDG_CACHE_HOME:-$HOME/.cache}/qat/ort, where
// .ci/run installs it, then through Node's own resolution (require('onnxruntime-node')).
//
// Exit status: 0 success, 1 run-time error, 2 usage error, 3 onnxruntime-node not found.
'use strict';
const fs = require('fs');
const os = require('os');
const path = require('path');

const usage = 'usage: node scripts/ort-run.js [--opt LEVEL] [--optimized FILE] [--repeat R | --batch B] MODEL.onnx INPUT.bin N C H W OUT.bin | --version';

function fail(code, msg) {
  process.stderr.write(`ort-run: ${msg}\n`);
  process.exit(code);
}

// locate returns the path of the onnxruntime-node package to load.
function locate() {
  const tried = [];
  const cache = process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache');
  const folders = process.env.ORT_NODE ? [process.env.ORT_NODE] : [path.join(cache, 'qat', 'ort')];
  for (const dir of folders) {
    for (const p of [path.join(dir, 'node_modules', 'onnxruntime-node'), dir]) {
      tried.push(p);
      try {
        const pkg = JSON.parse(fs.readFileSync(path.join(p, 'package.json'), 'utf8'));
        if (pkg.name === 'onnxruntime-node') return p;
      } catch (e) {
        // not there: try the next place
      }
    }
  }
  if (!process.env.ORT_NODE) {
    try {
      return path.dirname(require.resolve('onnxruntime-node/package.json'));
    } catch (e) {
      tried.push("require('onnxruntime-node')");
    }
  }
  fail(3, `onnxruntime-node not found (tried ${tried.join(', ')}): install it as .ci/run does, ` +
    '`npm install --ignore-scripts --no-audit --no-fund --prefix "$HOME/.cache/qat/ort" onnxruntime-node@1.30.0`, ' +
    'and set ORT_NODE to that folder');
}

async function main(argv) {
  const where = locate();
  const ort = require(where);
  const version = JSON.parse(fs.readFileSync(path.join(where, 'package.json'), 'utf8')).version;
  if (argv.length === 1 && argv[0] === '--version') {
    process.stdout.write(JSON.stringify({ version, path: where }) + '\n');
    return;
  }
  let opt = 'all';
  if (argv[0] === '--opt') {
    opt = argv[1];
    argv = argv.slice(2);
    if (!['disabled', 'basic', 'extended', 'all'].includes(opt)) fail(2, `--opt ${opt}: want disabled, basic, extended or all`);
  }
  let optimized;
  if (argv[0] === '--optimized') {
    optimized = argv[1];
    argv = argv.slice(2);
    if (!optimized) fail(2, '--optimized: want a file name');
  }
  let repeat = 0;
  if (argv[0] === '--repeat') {
    const arg = argv[1];
    repeat = Number(arg);
    argv = argv.slice(2);
    if (!Number.isInteger(repeat) || repeat < 1) fail(2, `--repeat ${arg}: want a positive integer`);
  }
  let batch = 0;
  if (argv[0] === '--batch') {
    const arg = argv[1];
    batch = Number(arg);
    argv = argv.slice(2);
    if (!Number.isInteger(batch) || batch < 1) fail(2, `--batch ${arg}: want a positive integer`);
    if (repeat > 0) fail(2, '--batch and --repeat exclude each other');
  }
  if (argv.length !== 7) fail(2, usage);
  const [model, input, ...rest] = argv;
  const dims = rest.slice(0, 4).map(Number);
  const out = rest[4];
  if (!dims.every((d) => Number.isInteger(d) && d > 0)) fail(2, `shape ${rest.slice(0, 4).join(' ')}: want four positive integers`);
  const buf = fs.readFileSync(input);
  const count = dims.reduce((a, b) => a * b, 1);
  if (buf.length !== 4 * count) fail(1, `${input} holds ${buf.length} bytes, want ${4 * count} for float32 [${dims}]`);
  const x = new Float32Array(count);
  for (let i = 0; i < count; i++) x[i] = buf.readFloatLE(4 * i);
  const options = { intraOpNumThreads: 1, interOpNumThreads: 1, executionMode: 'sequential', graphOptimizationLevel: opt };
  if (optimized !== undefined) options.optimizedModelFilePath = optimized;
  const session = await ort.InferenceSession.create(model, options);
  const feeds = { [session.inputNames[0]]: new ort.Tensor('float32', x, dims) };
  let results;
  if (batch > 0) {
    // One run a batch, the outputs joined along the first axis.
    const per = count / dims[0];
    const parts = [];
    let outDims;
    for (let s = 0; s < dims[0]; s += batch) {
      const b = Math.min(batch, dims[0] - s);
      const t = new ort.Tensor('float32', x.subarray(s * per, (s + b) * per), [b, ...dims.slice(1)]);
      const r = await session.run({ [session.inputNames[0]]: t });
      const y = r[session.outputNames[0]];
      if (y.type !== 'float32') fail(1, `output ${session.outputNames[0]} is ${y.type}, want float32`);
      parts.push(y.data);
      outDims = y.dims;
    }
    const data = new Float32Array(parts.reduce((a, p) => a + p.length, 0));
    let at = 0;
    for (const p of parts) {
      data.set(p, at);
      at += p.length;
    }
    results = { [session.outputNames[0]]: { type: 'float32', data, dims: [dims[0], ...outDims.slice(1)] } };
  } else {
    results = await session.run(feeds);
  }
  let seconds;
  for (let r = 0; r < repeat; r++) {
    const t = process.hrtime.bigint();
    await session.run(feeds);
    const s = Number(process.hrtime.bigint() - t) / 1e9;
    if (seconds === undefined || s < seconds) seconds = s;
  }
  const name = session.outputNames[0];
  const y = results[name];
  if (y.type !== 'float32') fail(1, `output ${name} is ${y.type}, want float32`);
  const o = Buffer.alloc(4 * y.data.length);
  for (let i = 0; i < y.data.length; i++) o.writeFloatLE(y.data[i], 4 * i);
  fs.writeFileSync(out, o);
  const line = { output: name, shape: y.dims, onnxruntime: version };
  if (seconds !== undefined) line.seconds = seconds;
  process.stdout.write(JSON.stringify(line) + '\n');
}

main(process.argv.slice(2)).catch((e) => fail(1, e && e.stack ? e.stack : String(e)));
