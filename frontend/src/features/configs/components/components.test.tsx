import { render, screen, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { SideBySideDiff } from "./SideBySideDiff";
import { ValidationErrors } from "./ValidationErrors";

describe("SideBySideDiff", () => {
  const before = "exporters:\n  debug: {}\nservice: {}\n";
  const after = "exporters:\n  debug:\n    verbosity: detailed\nservice: {}\n";

  it("shows the old line on the left and the new ones on the right, marked for screen readers", () => {
    render(<SideBySideDiff before={before} after={after} fromLabel="v1" toLabel="v2" />);
    const table = screen.getByRole("table", { name: "Changes from v1 to v2" });
    const rows = within(table).getAllByRole("row");
    // header, exporters (same), debug changed, verbosity added, service (same)
    expect(rows).toHaveLength(5);
    // (whitespace is collapsed by the matcher)
    expect(rows[2]).toHaveTextContent("removed: debug: {}");
    expect(rows[2]).toHaveTextContent("added: debug:");
    expect(rows[3]).toHaveTextContent("added: verbosity: detailed");
    expect(rows[3]).not.toHaveTextContent("removed:");
    expect(screen.getByText("+2")).toBeInTheDocument();
    expect(screen.getByText("−1")).toBeInTheDocument();
  });

  it("says so when the versions are identical", () => {
    render(<SideBySideDiff before={before} after={before} fromLabel="v1" toLabel="v1" />);
    expect(screen.getByText("The two versions are identical.")).toBeInTheDocument();
  });

  it("folds long unchanged stretches until asked to show them", async () => {
    const long = Array.from({ length: 30 }, (_, i) => `k${i}: ${i}`).join("\n");
    render(<SideBySideDiff before={long} after={long.replace("k15: 15", "k15: fifteen")} fromLabel="v1" toLabel="v2" />);
    expect(screen.getAllByText("⋯")).toHaveLength(2);
    await userEvent.click(screen.getByLabelText("Show unchanged lines"));
    expect(screen.queryByText("⋯")).toBeNull();
    expect(within(screen.getByRole("table")).getAllByRole("row")).toHaveLength(31);
  });
});

describe("ValidationErrors", () => {
  it("lists each error with its line:column, which goes to the line", async () => {
    const picked: unknown[] = [];
    render(
      <ValidationErrors
        title="Problems found"
        errors={[
          { line: 9, column: 20, message: "pipeline 'traces' uses processor 'nope'" },
          { line: null, column: null, message: "service is missing" },
        ]}
        onPick={(e) => picked.push(e)}
      />,
    );
    const list = screen.getByRole("alert", { name: "Validation errors" });
    expect(within(list).getAllByRole("listitem")).toHaveLength(2);
    await userEvent.click(within(list).getByRole("button", { name: "9:20" }));
    expect(picked).toEqual([{ line: 9, column: 20, message: "pipeline 'traces' uses processor 'nope'" }]);
    expect(list).toHaveTextContent("service is missing");
  });

  it("renders nothing without errors", () => {
    const { container } = render(<ValidationErrors title="x" errors={[]} />);
    expect(container).toBeEmptyDOMElement();
  });
});
