// Entry point; the command line and machine assembly live beside it.
int main() { return 0; }
