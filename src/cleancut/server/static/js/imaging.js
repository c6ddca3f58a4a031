// The pre- and post-processing of a model's recipe (/api/config: normalisation, resize,
// activation, rescale), as cleancut.pipeline does it in Python, so that a cut-out made in the
// browser matches one made on the server: bit for bit for IS-Net (IMG.LY's grid), and for
// Pillow's filters (pil-bilinear, pil-lanczos, pil-bicubic: a port of its fixed-point
// Resample.c); within float rounding for the rest.
//
// Resize: bilinear on IMG.LY's grid, src = dst * (srcSize / dstSize) (no half-pixel offset),
// neighbours floor/ceil clamped to the edge, v = (1−dx)(1−dy)·p1 + dx(1−dy)·p2 + (1−dx)dy·p3
// + dx·dy·p4 evaluated in doubles in exactly that order (weight products first, then left to
// right), then Math.round. The same order as pipeline.py, so the results are identical, not
// merely close: a different but equivalent order flips ties such as 153.5 (checked against
// pipeline.py in tests/test_web.py).


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

// ------------------------------------------------------------------ Pillow's filters
// Image.resize with BILINEAR, BICUBIC or LANCZOS on 8-bit images: coefficients in doubles,
// normalised, turned into 22-bit fixed point, a horizontal pass (clipped to 8 bits) then a
// vertical one, as Pillow's Resample.c does (precompute_coeffs, normalize_coeffs_8bpc).

const PRECISION_BITS = 32 - 8 - 2;
const FILTERS = {
  bilinear: { support: 1, f: (x) => ((x = Math.abs(x)) < 1 ? 1 - x : 0) },
  bicubic: {
    support: 2,
    f: (x) => {
      const a = -0.5;
      x = Math.abs(x);
      if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
      if (x < 2) return (((x - 5) * x + 8) * x - 4) * a;
      return 0;
    },
  },
  lanczos: {
    support: 3,
    f: (x) => {
      const sinc = (v) => (v === 0 ? 1 : Math.sin(v * Math.PI) / (v * Math.PI));
      return x >= -3 && x < 3 ? sinc(x) * sinc(x / 3) : 0;
    },
  },
};

function pilCoeffs(inSize, outSize, filter) {
  const scale = inSize / outSize;
  const filterscale = Math.max(scale, 1);
  const support = filter.support * filterscale;
  const ksize = Math.ceil(support) * 2 + 1;
  const kk = new Int32Array(outSize * ksize);
  const bounds = new Int32Array(outSize * 2);
  const w = new Float64Array(ksize);
  for (let xx = 0; xx < outSize; xx++) {
    const center = (xx + 0.5) * scale;
    const ss = 1 / filterscale;
    const xmin = Math.max(Math.trunc(center - support + 0.5), 0);
    const xmax = Math.min(Math.trunc(center + support + 0.5), inSize) - xmin;
    let ww = 0;
    for (let x = 0; x < xmax; x++) {
      w[x] = filter.f((x + xmin - center + 0.5) * ss);
      ww += w[x];
    }
    for (let x = 0; x < xmax; x++) {
      const k = ww !== 0 ? w[x] / ww : w[x];
      kk[xx * ksize + x] = Math.trunc(k < 0 ? -0.5 + k * (1 << PRECISION_BITS) : 0.5 + k * (1 << PRECISION_BITS));
    }
    bounds[2 * xx] = xmin;
    bounds[2 * xx + 1] = xmax;
  }
  return { ksize, kk, bounds };
}

const clip8 = (v) => Math.min(255, Math.max(0, Math.floor(v / (1 << PRECISION_BITS))));

/**
 * Pillow's resize of interleaved uint8 pixels (`filter`: bilinear, bicubic or lanczos).
 * @returns {Uint8Array} [dstH, dstW, channels]
 */
export function resizePillow(src, srcW, srcH, stride, channels, dstW, dstH, filter) {
  const f = FILTERS[filter];
  if (!f) throw new Error(`unknown Pillow filter ${filter}`);
  let img = src;
  let w = srcW;
  let st = stride;
  const half = 1 << (PRECISION_BITS - 1);
  const v = pilCoeffs(srcH, dstH, f);
  const yFirst = v.bounds[0];
  const yLast = v.bounds[2 * dstH - 2] + v.bounds[2 * dstH - 1];
  let rows = srcH;
  let rowOffset = 0;
  if (dstW !== srcW) {
    // horizontal pass over the rows the vertical pass reads
    const h = pilCoeffs(srcW, dstW, f);
    rows = yLast - yFirst;
    const tmp = new Uint8Array(dstW * rows * channels);
    for (let y = 0; y < rows; y++) {
      const row = (y + yFirst) * srcW;
      for (let xx = 0; xx < dstW; xx++) {
        const xmin = h.bounds[2 * xx];
        const xmax = h.bounds[2 * xx + 1];
        const k = xx * h.ksize;
        for (let c = 0; c < channels; c++) {
          let ss = half;
          for (let x = 0; x < xmax; x++) ss += img[(row + x + xmin) * st + c] * h.kk[k + x];
          tmp[(y * dstW + xx) * channels + c] = clip8(ss);
        }
      }
    }
    img = tmp;
    w = dstW;
    st = channels;
    rowOffset = yFirst;
  }
  if (dstH === srcH && dstW !== srcW) return img;
  const out = new Uint8Array(dstW * dstH * channels);
  for (let yy = 0; yy < dstH; yy++) {
    const ymin = v.bounds[2 * yy] - rowOffset;
    const ymax = v.bounds[2 * yy + 1];
    const k = yy * v.ksize;
    for (let xx = 0; xx < w; xx++) {
      for (let c = 0; c < channels; c++) {
        let ss = half;
        for (let y = 0; y < ymax; y++) ss += img[((y + ymin) * w + xx) * st + c] * v.kk[k + y];
        out[(yy * w + xx) * channels + c] = clip8(ss);
      }
    }
  }
  return out;
}

/** Half-pixel bilinear without anti-aliasing (PyTorch's interpolate, OpenCV's resize), in
 * doubles: within a level of OpenCV's fixed-point result. */
export function resizeHalfPixel(src, srcW, srcH, stride, channels, dstW, dstH) {
  const out = new Uint8Array(dstW * dstH * channels);
  const axis = (s, d) => {
    const lo = new Int32Array(d), hi = new Int32Array(d), fr = new Float64Array(d);
    for (let i = 0; i < d; i++) {
      const pos = Math.max((i + 0.5) * (s / d) - 0.5, 0);
      lo[i] = Math.min(Math.floor(pos), s - 1);
      hi[i] = Math.min(lo[i] + 1, s - 1);
      fr[i] = pos - lo[i];
    }
    return { lo, hi, fr };
  };
  const gx = axis(srcW, dstW);
  const gy = axis(srcH, dstH);
  let o = 0;
  for (let y = 0; y < dstH; y++) {
    const top = gy.lo[y] * srcW, bottom = gy.hi[y] * srcW, dy = gy.fr[y];
    for (let x = 0; x < dstW; x++) {
      const dx = gx.fr[x];
      for (let c = 0; c < channels; c++) {
        const a = src[(top + gx.lo[x]) * stride + c] * (1 - dx) + src[(top + gx.hi[x]) * stride + c] * dx;
        const b = src[(bottom + gx.lo[x]) * stride + c] * (1 - dx) + src[(bottom + gx.hi[x]) * stride + c] * dx;
        out[o++] = Math.round(a * (1 - dy) + b * dy);
      }
    }
  }
  return out;
}

/** Interleaved uint8 pixels resized as a recipe's `downsample`/`upsample` kind says. */
export function resizeAs(kind, src, srcW, srcH, stride, channels, dstW, dstH) {
  if (kind === "imgly" || kind === "imgly-exact") {
    return resizeBilinear(src, srcW, srcH, stride, channels, dstW, dstH);
  }
  if (kind === "bilinear") return resizeHalfPixel(src, srcW, srcH, stride, channels, dstW, dstH);
  if (kind.startsWith("pil-")) return resizePillow(src, srcW, srcH, stride, channels, dstW, dstH, kind.slice(4));
  throw new Error(`unknown resize ${kind}`);
}

/**
 * RGBA pixels → network input [1, 3, H, W] float32 as the recipe says: resized
 * (recipe.downsample) to the pass's size (default the model's own), then per network channel
 * x = v·scale/std − mean/std, reading R, G, B in the recipe's channel order; alpha ignored.
 */
export function preprocess(rgba, width, height, recipe, outH = recipe.height, outW = recipe.width) {
  const same = width === outW && height === outH;
  const rgb = same ? rgba : resizeAs(recipe.downsample, rgba, width, height, 4, 3, outW, outH);
  const stride = same ? 4 : 3;
  const norm = recipe.normalization;
  const order = norm.channels === "BGR" ? [2, 1, 0] : [0, 1, 2];
  const plane = outW * outH;
  const x = new Float32Array(3 * plane);
  for (let c = 0; c < 3; c++) {
    const a = norm.scale / norm.std[c];
    const b = -norm.mean[c] / norm.std[c];
    const src = order[c];
    const base = c * plane;
    for (let i = 0; i < plane; i++) x[base + i] = rgb[stride * i + src] * a + b;
  }
  return x;
}

/** What the model file's final map still needs to be probabilities (recipe.activation,
 * recipe.rescale), in place: a sigmoid, then (v − min)/(max − min) over the map (a flat map
 * is left as it is), as the server's prepared graph appends them. */
export function activate(data, recipe) {
  if (recipe.activation === "sigmoid") {
    for (let i = 0; i < data.length; i++) data[i] = 1 / (1 + Math.exp(-data[i]));
  }
  if (recipe.rescale === "minmax") {
    let lo = Infinity, hi = -Infinity;
    for (const v of data) {
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
    const range = hi - lo;
    if (range !== 0) for (let i = 0; i < data.length; i++) data[i] = (data[i] - lo) / range;
  }
  return data;
}

/**
 * Network output (S×S floats in 0..1) → full-size uint8 mask: v·255 rounded half up, in
 * doubles, as pipeline.postprocess (the reference truncates, which caps alpha at 254: the
 * network's largest output is 0.9999999); then resized to the image's own size on the same
 * grid. (For the float models the library may resize with OpenCV on the same grid, within
 * one level; the page always uses this exact port, which pipeline.py keeps as its reference.)
 */
export function postprocess(output, width, height, size, up = "imgly", sizeH = size) {
  const m8 = new Uint8Array(size * sizeH);
  for (let i = 0; i < m8.length; i++) {
    const v = output[i];
    const clipped = v > 1 ? 1 : v >= 0 ? v : 0; // NaN → 0, as np.nan_to_num(np.clip(...))
    m8[i] = Math.floor(clipped * 255 + 0.5);
  }
  if (width === size && height === sizeH) return m8;
  return resizeAs(up, m8, size, sizeH, 1, 1, width, height);
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

/** `planes` float planes (S wide, `height` tall) mirrored left-right (a flipped pass's input, or its output back). */
export function mirror(data, size, planes = 1, height = size) {
  const out = new Float32Array(data.length);
  for (let p = 0; p < planes; p++) {
    for (let y = 0; y < height; y++) {
      const row = p * size * height + y * size;
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
