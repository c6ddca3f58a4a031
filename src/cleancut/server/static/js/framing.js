// Backgrounds and framing in the page, after cleancut.framing: the same subject box (alpha
// ≥ 10), crop margin, square canvas with padding centred on the subject, and size cap, so a
// framed cut-out made here has the geometry the server would give it. Compositing is done by
// the canvas (sRGB, as cleancut.framing does); the blurred background uses the canvas blur
// filter, with the subject left out of the blur as on the server (normalised convolution:
// the background-only layer is blurred premultiplied, then read back unpremultiplied). The
// edge options (guided refinement, colour decontamination) and the shadow are server-only.

export const SUBJECT_LEVEL = 10;
const WORK_SIGMA = 4; // blur on a copy downscaled until sigma is this many pixels

/** The e-commerce preset, as Framing.ecommerce(). */
export const ECOMMERCE = Object.freeze({
  background: "#ffffff",
  crop: true,
  margin: 0,
  square: true,
  padding: 0.075,
  maxSize: 2000,
});

/** Bounding box [left, top, right, bottom) of alpha ≥ SUBJECT_LEVEL, or null. */
export function subjectBox(alpha, width, height) {
  let left = width;
  let top = height;
  let right = -1;
  let bottom = -1;
  for (let y = 0, i = 0; y < height; y++) {
    for (let x = 0; x < width; x++, i++) {
      if (alpha[i] >= SUBJECT_LEVEL) {
        if (x < left) left = x;
        if (x > right) right = x;
        if (y < top) top = y;
        bottom = y;
      }
    }
  }
  return right < 0 ? null : [left, top, right + 1, bottom + 1];
}

/** The crop box, canvas window and output size, as framing.geometry in Python. */
export function geometry(alpha, width, height, options) {
  const { crop = false, margin = 0.05, square = false, padding = 0, maxSize = null } = options;
  const subject = crop || square ? subjectBox(alpha, width, height) : null;
  let box = [0, 0, width, height];
  let extent = [width, height];
  let centre2 = [width, height]; // twice the centre, in integers
  if (crop && subject) {
    const [l, t, r, b] = subject;
    const m = Math.ceil(margin * Math.max(r - l, b - t));
    box = [Math.max(0, l - m), Math.max(0, t - m), Math.min(width, r + m), Math.min(height, b + m)];
    extent = [r - l + 2 * m, b - t + 2 * m];
    centre2 = [l + r, t + b];
  }
  let window = box;
  if (square) {
    const side = Math.ceil(Math.max(...extent) / (1 - 2 * padding) - 1e-9);
    const x0 = Math.floor((centre2[0] - side) / 2);
    const y0 = Math.floor((centre2[1] - side) / 2);
    window = [x0, y0, x0 + side, y0 + side];
  }
  const ww = window[2] - window[0];
  const wh = window[3] - window[1];
  const scale = maxSize && Math.max(ww, wh) > maxSize ? maxSize / Math.max(ww, wh) : 1;
  return { subject, box, window, size: [Math.max(1, Math.round(ww * scale)), Math.max(1, Math.round(wh * scale))], scale };
}

function canvas(width, height) {
  const c = document.createElement("canvas");
  c.width = width;
  c.height = height;
  return c;
}

/** The photo blurred with the subject left out, drawn on ctx under the window. */
function drawBlur(ctx, photo, alpha, geo, blur) {
  const { width: w, height: h } = photo;
  const [ow, oh] = geo.size;
  const [x0, y0] = geo.window;
  const s = geo.scale;
  const sigma = blur * Math.max(ow, oh); // output pixels
  const f = Math.min(1, WORK_SIGMA / sigma) * s; // source → working scale
  const sw = Math.max(1, Math.round(w * f));
  const sh = Math.max(1, Math.round(h * f));
  const workSigma = (sigma * f) / s;
  const place = (source) => ctx.drawImage(source, 0, 0, sw, sh, -x0 * s, -y0 * s, w * s, h * s);

  // Under it all, the plain blurred photo (where no background is within reach).
  const plain = canvas(sw, sh);
  const pctx = plain.getContext("2d");
  pctx.filter = `blur(${workSigma}px)`;
  pctx.drawImage(photo, 0, 0, sw, sh);
  place(plain);

  // The background alone (alpha = 255 − mask), blurred premultiplied, read back unpremultiplied.
  const layer = canvas(w, h);
  const lctx = layer.getContext("2d", { willReadFrequently: true });
  lctx.drawImage(photo, 0, 0);
  const img = lctx.getImageData(0, 0, w, h);
  for (let i = 0, p = 3; i < alpha.length; i++, p += 4) img.data[p] = 255 - alpha[i];
  lctx.putImageData(img, 0, 0);
  const small = canvas(sw, sh);
  const sctx = small.getContext("2d", { willReadFrequently: true });
  sctx.filter = `blur(${workSigma}px)`;
  sctx.drawImage(layer, 0, 0, sw, sh);
  const blurred = sctx.getImageData(0, 0, sw, sh);
  for (let p = 3; p < blurred.data.length; p += 4) blurred.data[p] = blurred.data[p] > 2 ? 255 : 0;
  sctx.filter = "none";
  sctx.putImageData(blurred, 0, 0);
  place(small);
}

/** An image scaled to cover the canvas, centred (Framing's fit="fill"). */
function drawCover(ctx, image, ow, oh) {
  const s = Math.max(ow / image.width, oh / image.height);
  const w = image.width * s;
  const h = image.height * s;
  ctx.drawImage(image, (ow - w) / 2, (oh - h) / 2, w, h);
}

/**
 * Frame a transparent cut-out (a canvas whose alpha is the mask).
 * @param {HTMLCanvasElement} cutout
 * @param {HTMLCanvasElement|null} photo  the original photo, for background "blur"
 * @param {object} options  background (null | CSS colour | "blur" | an image), blur, crop,
 *   margin, square, padding, maxSize
 * @returns {{canvas: HTMLCanvasElement, geometry: object, changed: boolean}}
 */
export function frame(cutout, photo, options) {
  const { width: w, height: h } = cutout;
  const data = cutout.getContext("2d", { willReadFrequently: true }).getImageData(0, 0, w, h).data;
  const alpha = new Uint8Array(w * h);
  for (let i = 0, p = 3; i < alpha.length; i++, p += 4) alpha[i] = data[p];
  const geo = geometry(alpha, w, h, options);
  const [ow, oh] = geo.size;
  const [x0, y0] = geo.window;
  const changed = ow !== w || oh !== h || x0 !== 0 || y0 !== 0;
  if (!options.background && !changed) return { canvas: cutout, geometry: geo, changed }; // the plain cut-out
  const [bl, bt, br, bb] = geo.box;
  const s = geo.scale;
  const out = canvas(ow, oh);
  const ctx = out.getContext("2d");
  ctx.imageSmoothingQuality = "high";
  const bg = options.background;
  if (bg === "blur" && photo) drawBlur(ctx, photo, alpha, geo, options.blur ?? 0.02);
  else if (bg && typeof bg === "object") drawCover(ctx, bg, ow, oh);
  else if (typeof bg === "string" && bg !== "blur") {
    ctx.fillStyle = bg;
    ctx.fillRect(0, 0, ow, oh);
  }
  if (br > bl && bb > bt) ctx.drawImage(cutout, bl, bt, br - bl, bb - bt, (bl - x0) * s, (bt - y0) * s, (br - bl) * s, (bb - bt) * s);
  return { canvas: out, geometry: geo, changed };
}
