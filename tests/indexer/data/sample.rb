# sample.rb — fixture for the indexer's symbol tests (not run).
module Shapes
  class Square
    def initialize(side)
      @side = side
    end

    def area
      @side * @side
    end

    def self.unit
      new(1)
    end
  end
end

def total(shapes)
  shapes.map(&:area).sum
end
