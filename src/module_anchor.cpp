// Compiled into every module library so that a module under construction (no sources yet)
// still forms a valid static library target.
namespace aftermath::detail {
int module_anchor() { return 0; }
}  // namespace aftermath::detail
