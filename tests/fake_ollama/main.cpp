// placeholder: replaced by the emulator
int main() { return 0; }
