// sample.cpp — fixture for the indexer's symbol tests (not built).
#include <string>
#include <vector>

namespace geometry {

class Shape {
 public:
  virtual ~Shape() {}
  virtual double area() const = 0;
};

class Circle : public Shape {
 public:
  explicit Circle(double r) : r_(r) {}
  double area() const override { return 3.14159 * r_ * r_; }

 private:
  double r_;
};

double total_area(const std::vector<Shape *> &shapes) {
  double t = 0;
  for (auto *s : shapes) t += s->area();
  return t;
}

}  // namespace geometry

struct Config {
  std::string name;
  int level;
};

int parse_level(const std::string &s) { return std::stoi(s); }
