// sample.ts — fixture for the indexer's symbol tests (not run).
export interface Point {
  x: number;
  y: number;
}

export class Vector {
  constructor(public x: number, public y: number) {}

  length(): number {
    return Math.sqrt(this.x * this.x + this.y * this.y);
  }

  add(other: Vector): Vector {
    return new Vector(this.x + other.x, this.y + other.y);
  }
}

export function distance(a: Point, b: Point): number {
  const dx = a.x - b.x;
  const dy = a.y - b.y;
  return Math.sqrt(dx * dx + dy * dy);
}

export abstract class Animal {
  abstract speak(): string;
}
