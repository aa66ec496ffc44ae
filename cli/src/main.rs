fn main() {
    println!("toxi CLI: not yet implemented");
}
