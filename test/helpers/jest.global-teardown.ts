// Once after every suite of a jest run.
import { removeTemplateFolder } from './pglite-template';

export default removeTemplateFolder;
