import type { BookView } from '../client/order-book.js';

/** Draws cumulative bid (left, green) and ask (right, red) depth around the mid price. */
export function drawDepth(canvas: HTMLCanvasElement, view: BookView, levels = 40): void {
  const g = canvas.getContext('2d');
  if (!g) return;
  const { width, height } = canvas;
  g.clearRect(0, 0, width, height);
  if (!view.synced || view.bids.length === 0 || view.asks.length === 0) return;
  const cumulative = (side: readonly (readonly [string, string])[]) => {
    let total = 0;
    return side.slice(0, levels).map(([price, size]) => {
      total += Number(size);
      return [Number(price), total] as const;
    });
  };
  const bids = cumulative(view.bids);
  const asks = cumulative(view.asks);
  const low = bids.at(-1)![0];
  const high = asks.at(-1)![0];
  const most = Math.max(bids.at(-1)![1], asks.at(-1)![1]);
  const x = (price: number) => ((price - low) / (high - low || 1)) * width;
  const y = (total: number) => height - (total / most) * (height - 10);
  const area = (points: readonly (readonly [number, number])[], stroke: string, fill: string) => {
    g.beginPath();
    g.moveTo(x(points[0]![0]), height);
    for (const [price, total] of points) g.lineTo(x(price), y(total));
    g.lineTo(x(points.at(-1)![0]), height);
    g.closePath();
    g.fillStyle = fill;
    g.fill();
    g.strokeStyle = stroke;
    g.stroke();
  };
  area(bids, '#3fb950', 'rgba(63, 185, 80, 0.3)');
  area(asks, '#f85149', 'rgba(248, 81, 73, 0.3)');
  g.fillStyle = '#8b949e';
  g.font = '12px system-ui, sans-serif';
  g.fillText(`${view.bids[0]![0]} / ${view.asks[0]![0]}  (sequence ${view.sequence})`, 8, 16);
}
