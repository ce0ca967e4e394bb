// Sample.java — fixture for the indexer's symbol tests (not built).
package sample;

import java.util.ArrayList;
import java.util.List;

public class Sample {
    private final List<String> names = new ArrayList<>();

    public void addName(String n) {
        names.add(n);
    }

    public int size() {
        return names.size();
    }

    interface Visitor {
        void visit(String n);
    }

    static class Printer implements Visitor {
        public void visit(String n) {
            System.out.println(n);
        }
    }
}
