// The IS-Net pre- and post-processing, bit for bit as cleancut.pipeline does it in Python,
// so that a cut-out made in the browser matches one made on the server.
//
// Resize: bilinear on IMG.LY's grid, src = dst * (srcSize / dstSize) (no half-pixel offset),
// neighbours floor/ceil clamped to the edge, v = (1−dx)(1−dy)·p1 + dx(1−dy)·p2 + (1−dx)dy·p3
// + dx·dy·p4 evaluated in doubles in exactly that order (weight products first, then left to
// right), then Math.round. The same order as pipeline.py, so the results are identical, not
// merely close: a different but equivalent order flips ties such as 153.5 (checked against
// pipeline.py in tests/test_web.py).

export const INPUT_SIZE = 1024;
const MEAN = 128;
const STD = 256;

/** Sampling grid of one axis: floor/ceil neighbours and the fraction, as pipeline._axis_grid. */
function axisGrid(src, dst) {
  const lo = new Int32Array(dst);
  const hi = new Int32Array(dst);
  const frac = new Float64Array(dst);
  const ratio = src / dst;
  for (let i = 0; i < dst; i++) {
    const pos = i * ratio;
    const l = Math.min(Math.max(Math.floor(pos), 0), src - 1);
    lo[i] = l;
    hi[i] = Math.min(Math.ceil(pos), src - 1);
    frac[i] = pos - l;
  }
  return { lo, hi, frac };
}

/**
 * Resize interleaved uint8 pixels.
 * @param {Uint8Array|Uint8ClampedArray} src  [srcH, srcW, stride] interleaved
 * @param {number} stride  values per source pixel (1 for a mask, 4 for RGBA)
 * @param {number} channels  how many of them to resize (3 takes RGB of RGBA)
 * @returns {Uint8Array} [dstH, dstW, channels]
 */
export function resizeBilinear(src, srcW, srcH, stride, channels, dstW, dstH) {
  const out = new Uint8Array(dstW * dstH * channels);
  const gx = axisGrid(srcW, dstW);
  const gy = axisGrid(srcH, dstH);
  let o = 0;
  for (let y = 0; y < dstH; y++) {
    const rowTop = gy.lo[y] * srcW;
    const rowBottom = gy.hi[y] * srcW;
    const dy = gy.frac[y];
    const wy = 1 - dy;
    for (let x = 0; x < dstW; x++) {
      const dx = gx.frac[x];
      const wx = 1 - dx;
      const w1 = wx * wy;
      const w2 = dx * wy;
      const w3 = wx * dy;
      const w4 = dx * dy;
      const p1 = (rowTop + gx.lo[x]) * stride;
      const p2 = (rowTop + gx.hi[x]) * stride;
      const p3 = (rowBottom + gx.lo[x]) * stride;
      const p4 = (rowBottom + gx.hi[x]) * stride;
      for (let ch = 0; ch < channels; ch++) {
        out[o++] = Math.round(w1 * src[p1 + ch] + w2 * src[p2 + ch] + w3 * src[p3 + ch] + w4 * src[p4 + ch]);
      }
    }
  }
  return out;
}

/** RGBA pixels → network input [1, 3, S, S] float32, (v − 128) / 256, alpha ignored. */
export function preprocess(rgba, width, height, size = INPUT_SIZE) {
  const rgb = resizeBilinear(rgba, width, height, 4, 3, size, size);
  const plane = size * size;
  const x = new Float32Array(3 * plane);
  for (let i = 0; i < plane; i++) {
    x[i] = (rgb[3 * i] - MEAN) / STD;
    x[plane + i] = (rgb[3 * i + 1] - MEAN) / STD;
    x[2 * plane + i] = (rgb[3 * i + 2] - MEAN) / STD;
  }
  return x;
}

/**
 * Network output (S×S floats in 0..1) → full-size uint8 mask: v·255 rounded half up, in
 * doubles, as pipeline.postprocess (the reference truncates, which caps alpha at 254: the
 * network's largest output is 0.9999999); then resized to the image's own size on the same
 * grid. (For the float models the library may resize with OpenCV on the same grid, within
 * one level; the page always uses this exact port, which pipeline.py keeps as its reference.)
 */
export function postprocess(output, width, height, size = INPUT_SIZE) {
  const m8 = new Uint8Array(size * size);
  for (let i = 0; i < m8.length; i++) {
    const v = output[i];
    const clipped = v > 1 ? 1 : v >= 0 ? v : 0; // NaN → 0, as np.nan_to_num(np.clip(...))
    m8[i] = Math.floor(clipped * 255 + 0.5);
  }
  if (width === size && height === size) return m8;
  return resizeBilinear(m8, size, size, 1, 1, width, height);
}

/** round(a·b/255) in exact integers, as pipeline._mul_alpha. */
function mulAlpha(a, b) {
  const prod = a * b + 128;
  return (prod + (prod >> 8)) >> 8;
}

/**
 * The cut-out: RGBA whose alpha is the mask (combined with any alpha the photo has).
 * `keep`: "foreground" (alpha = mask), "background" (255 − mask) or "mask" (white, alpha = mask).
 */
export function compose(rgba, mask, keep = "foreground") {
  const out = new Uint8ClampedArray(rgba.length);
  for (let i = 0, p = 0; i < mask.length; i++, p += 4) {
    const m = keep === "background" ? 255 - mask[i] : mask[i];
    if (keep === "mask") {
      out[p] = out[p + 1] = out[p + 2] = 255;
      out[p + 3] = m;
      continue;
    }
    out[p] = rgba[p];
    out[p + 1] = rgba[p + 1];
    out[p + 2] = rgba[p + 2];
    const a = rgba[p + 3];
    out[p + 3] = a === 255 ? m : mulAlpha(m, a);
  }
  return out;
}

// ------------------------------------------------------------------ quality modes
// The passes of a mode and how their outputs combine, as cleancut.passes does it. These run
// in doubles where numpy runs float32 (log, exp), so they agree within float rounding, not
// bit for bit: a mask level may differ at a rare pixel (checked in tests/test_web.py).

/** `planes` S×S float planes mirrored left-right (a flipped pass's input, or its output back). */
export function mirror(data, size, planes = 1) {
  const out = new Float32Array(data.length);
  for (let p = 0; p < planes; p++) {
    for (let y = 0; y < size; y++) {
      const row = p * size * size + y * size;
      for (let x = 0; x < size; x++) out[row + x] = data[row + size - 1 - x];
    }
  }
  return out;
}

/** A float s×s plane resized to S×S on the reference grid (src = dst·s/S, edges repeated),
 * as passes.combine does with OpenCV's warpAffine. */
export function resizePlane(src, s, S) {
  if (s === S) return src;
  const g = axisGrid(s, S);
  const out = new Float32Array(S * S);
  for (let y = 0; y < S; y++) {
    const top = g.lo[y] * s;
    const bottom = g.hi[y] * s;
    const dy = g.frac[y];
    for (let x = 0; x < S; x++) {
      const dx = g.frac[x];
      const a = src[top + g.lo[x]] * (1 - dx) + src[top + g.hi[x]] * dx;
      const b = src[bottom + g.lo[x]] * (1 - dx) + src[bottom + g.hi[x]] * dx;
      out[y * S + x] = a * (1 - dy) + b * dy;
    }
  }
  return out;
}

/**
 * Several passes' outputs ({size, data}, each size×size in 0..1) → their mean on the largest
 * grid, sharpened by `gain` in logit space (0, ½ and 1 stay); one output is returned as it is.
 * @returns {{size: number, data: Float32Array}}
 */
export function combine(outputs, gain) {
  if (outputs.length === 1) return outputs[0];
  const S = Math.max(...outputs.map((o) => o.size));
  const total = new Float64Array(S * S);
  for (const o of outputs) {
    const plane = resizePlane(o.data, o.size, S);
    for (let i = 0; i < total.length; i++) total[i] += plane[i];
  }
  const out = new Float32Array(S * S);
  const lo = 1e-6;
  for (let i = 0; i < out.length; i++) {
    const y = total[i] / outputs.length;
    if (y <= 0) out[i] = 0;
    else if (y >= 1) out[i] = 1;
    else if (gain === 1) out[i] = y;
    else {
      const z = Math.min(Math.max(y, lo), 1 - lo);
      out[i] = 1 / (1 + Math.exp(-gain * Math.log(z / (1 - z))));
    }
  }
  return { size: S, data: out };
}
