// sample.js — fixture for the indexer's symbol tests (not run).
const path = require('path');

function joinAll(parts) {
  return parts.reduce((a, b) => path.join(a, b), '');
}

class Queue {
  constructor() {
    this.items = [];
  }

  push(item) {
    this.items.push(item);
  }

  pop() {
    return this.items.shift();
  }
}

function makeCounter(start) {
  let n = start;
  return function next() {
    n += 1;
    return n;
  };
}

module.exports = { joinAll, Queue, makeCounter };
